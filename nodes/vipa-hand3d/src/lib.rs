//! placeholder: written in the annotation issue
