//! placeholder: written in the training-speed issue
