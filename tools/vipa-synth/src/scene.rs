//! Scene content: the colour palette, object shapes, their primitives, and the per-clip plan
//! (which objects stand where, what the task is, where the camera is) drawn from a seeded RNG.
//!
//! World frame: metres, **z up**, the table top is the plane z = 0; **x** points to the right
//! and **y** away from the camera as seen in an unrotated clip. Each object's own frame has its
//! origin at the centre of its footprint on the table and z up.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::math::{Pose, Rot, V3, v3};
use crate::render::{Prim, Shape};
use crate::sidecar::{HandSide, ObjectInfo};

/// A named colour of the fixed palette (sRGB 0–255). Skin-like tones are left out on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour {
    pub name: &'static str,
    pub rgb: [u8; 3],
}

/// The palette object colours come from.
pub const PALETTE: [Colour; 8] = [
    Colour {
        name: "red",
        rgb: [210, 40, 35],
    },
    Colour {
        name: "green",
        rgb: [40, 170, 60],
    },
    Colour {
        name: "blue",
        rgb: [35, 80, 215],
    },
    Colour {
        name: "yellow",
        rgb: [240, 210, 40],
    },
    Colour {
        name: "purple",
        rgb: [140, 55, 180],
    },
    Colour {
        name: "orange",
        rgb: [245, 130, 20],
    },
    Colour {
        name: "cyan",
        rgb: [30, 190, 205],
    },
    Colour {
        name: "white",
        rgb: [235, 235, 230],
    },
];

/// Object shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    Cube,
    Box,
    Cylinder,
    Mug,
    Ball,
    Bowl,
}

impl ShapeKind {
    pub const ALL: [ShapeKind; 6] = [
        ShapeKind::Cube,
        ShapeKind::Box,
        ShapeKind::Cylinder,
        ShapeKind::Mug,
        ShapeKind::Ball,
        ShapeKind::Bowl,
    ];

    pub fn word(self) -> &'static str {
        match self {
            ShapeKind::Cube => "cube",
            ShapeKind::Box => "box",
            ShapeKind::Cylinder => "cylinder",
            ShapeKind::Mug => "mug",
            ShapeKind::Ball => "ball",
            ShapeKind::Bowl => "bowl",
        }
    }

    /// Extent (x, y, z) in metres at rest, handle included for the mug.
    pub fn size(self) -> V3 {
        match self {
            ShapeKind::Cube => v3(0.05, 0.05, 0.05),
            ShapeKind::Box => v3(0.10, 0.07, 0.045),
            ShapeKind::Cylinder => v3(0.056, 0.056, 0.09),
            ShapeKind::Mug => v3(0.07 + 0.028, 0.07, 0.085),
            ShapeKind::Ball => v3(0.06, 0.06, 0.06),
            ShapeKind::Bowl => v3(0.13, 0.13, 0.065),
        }
    }

    /// Radius of the footprint's bounding circle (for spacing objects apart).
    pub fn footprint_radius(self) -> f32 {
        let s = self.size();
        0.5 * (s.x * s.x + s.y * s.y).sqrt()
    }

    /// How far the fingers close around it (0 = open hand, 1 = fist).
    pub fn grasp_amount(self) -> f32 {
        match self {
            ShapeKind::Ball | ShapeKind::Cube => 0.75,
            ShapeKind::Cylinder | ShapeKind::Mug => 0.7,
            ShapeKind::Box => 0.6,
            ShapeKind::Bowl => 0.45,
        }
    }
}

/// Linear-ish 0–1 colour from sRGB bytes (we shade in sRGB space; it is a sketch renderer).
pub fn unit_rgb(rgb: [u8; 3]) -> [f32; 3] {
    rgb.map(|c| f32::from(c) / 255.0)
}

/// One object of a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSpec {
    pub kind: ShapeKind,
    pub colour: Colour,
    /// `world_from_object` at the start of the clip.
    pub start: Pose,
}

impl ObjectSpec {
    pub fn name(&self) -> String {
        format!("{} {}", self.colour.name, self.kind.word())
    }

    pub fn info(&self) -> ObjectInfo {
        let s = self.kind.size();
        ObjectInfo {
            name: self.name(),
            shape: self.kind.word().to_owned(),
            colour: self.colour.name.to_owned(),
            rgb: self.colour.rgb,
            size_m: s.to_array(),
        }
    }

    /// Centre of the bounding volume in the object frame.
    pub fn centre_local(&self) -> V3 {
        v3(0.0, 0.0, 0.5 * self.kind.size().z)
    }

    /// The object's primitives in the camera frame, given `cam_from_object`.
    pub fn prims(&self, cam_from_object: &Pose, label: u8) -> Vec<Prim> {
        let colour = unit_rgb(self.colour.rgb);
        let p = |x: f32, y: f32, z: f32| cam_from_object.apply(v3(x, y, z));
        let up = cam_from_object.apply_dir(v3(0.0, 0.0, 1.0));
        let prim = |shape, alt_colour| Prim {
            shape,
            colour,
            alt_colour,
            label,
        };
        let s = self.kind.size();
        match self.kind {
            ShapeKind::Cube | ShapeKind::Box => vec![prim(
                Shape::Box {
                    cam_from_box: cam_from_object
                        .compose(&Pose::new(Rot::IDENTITY, v3(0.0, 0.0, s.z / 2.0))),
                    half: s * 0.5,
                },
                colour,
            )],
            ShapeKind::Cylinder => vec![prim(
                Shape::Cylinder {
                    a: p(0.0, 0.0, 0.0),
                    b: p(0.0, 0.0, s.z),
                    r: s.y / 2.0,
                },
                colour.map(|c| c * 0.92),
            )],
            ShapeKind::Mug => {
                let r = s.y / 2.0;
                // Dark top: the mug is seen as full of coffee, which makes it read as a mug.
                let mut out = vec![prim(
                    Shape::Cylinder {
                        a: p(0.0, 0.0, 0.0),
                        b: p(0.0, 0.0, s.z),
                        r,
                    },
                    [0.25, 0.15, 0.09],
                )];
                // Handle on the object's +x side: a C of three capsules.
                let hx = r + 0.022;
                let pts = [
                    p(r - 0.004, 0.0, 0.72 * s.z),
                    p(hx, 0.0, 0.66 * s.z),
                    p(hx, 0.0, 0.30 * s.z),
                    p(r - 0.004, 0.0, 0.24 * s.z),
                ];
                for w in pts.windows(2) {
                    out.push(prim(
                        Shape::Capsule {
                            a: w[0],
                            b: w[1],
                            r: 0.0065,
                        },
                        colour,
                    ));
                }
                out
            }
            ShapeKind::Ball => vec![prim(
                Shape::Sphere {
                    c: p(0.0, 0.0, s.z / 2.0),
                    r: s.z / 2.0,
                },
                colour,
            )],
            ShapeKind::Bowl => vec![prim(
                Shape::Bowl {
                    c: p(0.0, 0.0, s.z),
                    r: s.z,
                    up,
                },
                colour.map(|c| 0.75 + 0.25 * c),
            )],
        }
    }
}

/// Where the target goes relative to the reference object (left/right as seen from the
/// camera, "in front of" = towards the camera).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    NextTo,
    LeftOf,
    RightOf,
    InFrontOf,
    Behind,
}

impl Relation {
    pub const ALL: [Relation; 5] = [
        Relation::NextTo,
        Relation::LeftOf,
        Relation::RightOf,
        Relation::InFrontOf,
        Relation::Behind,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Relation::NextTo => "next_to",
            Relation::LeftOf => "left_of",
            Relation::RightOf => "right_of",
            Relation::InFrontOf => "in_front_of",
            Relation::Behind => "behind",
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            Relation::NextTo => "next to",
            Relation::LeftOf => "to the left of",
            Relation::RightOf => "to the right of",
            Relation::InFrontOf => "in front of",
            Relation::Behind => "behind",
        }
    }

    /// Unit directions (world xy) the target may be put in, relative to the reference, given
    /// the camera's heading (`cam_right`, `cam_forward` on the table).
    fn directions(self, cam_right: V3, cam_forward: V3) -> Vec<V3> {
        match self {
            Relation::NextTo => vec![cam_right, -cam_right],
            Relation::LeftOf => vec![-cam_right],
            Relation::RightOf => vec![cam_right],
            Relation::InFrontOf => vec![-cam_forward],
            Relation::Behind => vec![cam_forward],
        }
    }
}

/// The task instruction for a target, relation and reference object.
pub fn instruction(
    rng: &mut ChaCha8Rng,
    target: &str,
    relation: Relation,
    reference: &str,
) -> String {
    let rel = relation.phrase();
    match rng.random_range(0..4) {
        0 => format!("pick up the {target} and put it {rel} the {reference}"),
        1 => format!("place the {target} {rel} the {reference}"),
        2 => format!("move the {target} so that it is {rel} the {reference}"),
        _ => format!("grab the {target} and set it down {rel} the {reference}"),
    }
}

/// Camera placement: orbit parameters around a look-at point, start and end (a static camera
/// has equal ends).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraPath {
    pub look_at: [V3; 2],
    /// Distance from the look-at point, metres.
    pub distance: [f32; 2],
    /// Elevation above the table plane, radians.
    pub elevation: [f32; 2],
    /// Azimuth about world z, radians (0 = camera on the −y side looking along +y).
    pub azimuth: [f32; 2],
}

impl CameraPath {
    /// `world_from_camera` at path parameter `s ∈ [0, 1]` (already time-warped by the caller).
    pub fn pose(&self, s: f32) -> Pose {
        let lerp = |a: [f32; 2]| a[0] + (a[1] - a[0]) * s;
        let target = self.look_at[0].lerp(self.look_at[1], s);
        let (el, az, dist) = (
            lerp(self.elevation),
            lerp(self.azimuth),
            lerp(self.distance),
        );
        let horizontal = v3(az.sin(), -az.cos(), 0.0);
        let eye = target + (horizontal * el.cos() + v3(0.0, 0.0, el.sin())) * dist;
        look_at(eye, target)
    }
}

/// `world_from_camera` for an OpenCV camera at `eye` looking at `target` with world z up.
pub fn look_at(eye: V3, target: V3) -> Pose {
    let z = (target - eye).normalized();
    let x = z.cross(v3(0.0, 0.0, 1.0)).normalized();
    let y = z.cross(x);
    Pose::new(
        Rot {
            cx: x,
            cy: y,
            cz: z,
        },
        eye,
    )
}

/// Everything random about a clip, drawn once from its RNG.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPlan {
    pub objects: Vec<ObjectSpec>,
    pub target: usize,
    pub reference: usize,
    pub relation: Relation,
    /// Where the target's footprint centre ends (world, z = 0).
    pub place_at: V3,
    pub instruction: String,
    /// Active hand first; an optional idle second hand.
    pub hands: Vec<HandSide>,
    pub hand_scale: f32,
    pub skin: [f32; 3],
    pub sleeve: [f32; 3],
    pub table_colour: [f32; 3],
    pub camera: CameraPath,
    pub camera_moving: bool,
    /// Phase boundaries as fractions of the clip: reach end, grasp end, move end, place end.
    pub phases: [f32; 4],
    /// Lift height while carrying, metres.
    pub lift: f32,
    /// Idle hand's resting offset and drift phase.
    pub idle_phase: f32,
}

/// Table extent `[x_min, x_max, y_min, y_max]`.
pub const TABLE_EXTENT: [f32; 4] = [-0.7, 0.7, -0.45, 0.6];
/// Where objects may stand (and be placed).
const AREA: [f32; 4] = [-0.24, 0.24, -0.10, 0.26];

fn in_area(p: V3, margin: f32) -> bool {
    p.x >= AREA[0] + margin
        && p.x <= AREA[1] - margin
        && p.y >= AREA[2] + margin
        && p.y <= AREA[3] - margin
}

/// Draws a clip plan. Rejection sampling with bounded retries keeps it deterministic and total.
pub fn sample_plan(rng: &mut ChaCha8Rng) -> ClipPlan {
    // Camera first: the relation words refer to its view.
    let az0 = rng.random_range(-0.2..0.2f32);
    let el0 = rng.random_range(0.80..1.05f32);
    let dist0 = rng.random_range(0.55..0.70f32);
    let look0 = v3(
        rng.random_range(-0.03..0.03),
        rng.random_range(0.04..0.10),
        0.02,
    );
    let camera_moving = rng.random_bool(0.35);
    let camera = if camera_moving {
        CameraPath {
            look_at: [
                look0,
                look0
                    + v3(
                        rng.random_range(-0.03..0.03),
                        rng.random_range(-0.02..0.02),
                        0.0,
                    ),
            ],
            distance: [dist0, dist0 + rng.random_range(-0.05..0.05)],
            elevation: [el0, el0 + rng.random_range(-0.08..0.08)],
            azimuth: [
                az0,
                az0 + rng.random_range(0.06..0.14) * if rng.random_bool(0.5) { 1.0 } else { -1.0 },
            ],
        }
    } else {
        CameraPath {
            look_at: [look0; 2],
            distance: [dist0; 2],
            elevation: [el0; 2],
            azimuth: [az0; 2],
        }
    };
    let cam_forward = v3(-az0.sin(), az0.cos(), 0.0);
    let cam_right = v3(az0.cos(), az0.sin(), 0.0);

    // Objects: distinct colours, shapes may repeat.
    let n = rng.random_range(2..=4usize);
    let mut colours = PALETTE.to_vec();
    colours.shuffle(rng);
    let mut objects: Vec<ObjectSpec> = Vec::with_capacity(n);
    // The first two objects go to opposite halves (x ≥ 0.2 m apart, more than any two
    // footprints need), so every clip has at least a target and a reference.
    let first_side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    for (k, colour) in colours.into_iter().take(n).enumerate() {
        let kind = ShapeKind::ALL[rng.random_range(0..ShapeKind::ALL.len())];
        let r = kind.footprint_radius();
        let x_range = match k {
            0 | 1 => {
                let s = if k == 0 { first_side } else { -first_side };
                if s > 0.0 {
                    0.10..AREA[1]
                } else {
                    AREA[0]..-0.10
                }
            }
            _ => AREA[0]..AREA[1],
        };
        let mut pos = None;
        for _ in 0..200 {
            let p = v3(
                rng.random_range(x_range.clone()),
                rng.random_range(AREA[2]..AREA[3]),
                0.0,
            );
            let free = objects
                .iter()
                .all(|o| (o.start.t - p).norm() > r + o.kind.footprint_radius() + 0.05);
            if free && in_area(p, 0.0) {
                pos = Some(p);
                break;
            }
        }
        let Some(p) = pos else { break };
        // Mug handles face the camera's side so they are usually visible.
        let yaw = rng.random_range(-std::f32::consts::PI..std::f32::consts::PI);
        objects.push(ObjectSpec {
            kind,
            colour,
            start: Pose::new(Rot::about_z(yaw), p),
        });
    }

    // Target, reference and a relation whose destination is free.
    let mut choice = None;
    'search: for _ in 0..60 {
        let t = rng.random_range(0..objects.len());
        let mut r = rng.random_range(0..objects.len() - 1);
        if r >= t {
            r += 1;
        }
        let relation = Relation::ALL[rng.random_range(0..Relation::ALL.len())];
        let mut dirs = relation.directions(cam_right, cam_forward);
        dirs.shuffle(rng);
        for dir in dirs {
            let gap =
                objects[t].kind.footprint_radius() + objects[r].kind.footprint_radius() + 0.035;
            let dest = objects[r].start.t + dir * gap;
            let free = objects.iter().enumerate().all(|(k, o)| {
                k == t
                    || (o.start.t - dest).norm()
                        > objects[t].kind.footprint_radius() + o.kind.footprint_radius() + 0.02
            });
            if free && in_area(dest, -0.06) && (dest - objects[t].start.t).norm() > 0.06 {
                choice = Some((t, r, relation, dest));
                break 'search;
            }
        }
    }
    // With at least two objects in a 48×36 cm area a free spot is found essentially always;
    // the fallback keeps the function total: put the target beside the reference anyway.
    let (target, reference, relation, place_at) = choice.unwrap_or_else(|| {
        let gap = objects[0].kind.footprint_radius() + objects[1].kind.footprint_radius() + 0.035;
        (1, 0, Relation::NextTo, objects[0].start.t + cam_right * gap)
    });
    let instruction = instruction(
        rng,
        &objects[target].name(),
        relation,
        &objects[reference].name(),
    );

    let active = if rng.random_bool(0.6) {
        HandSide::Right
    } else {
        HandSide::Left
    };
    let mut hands = vec![active];
    if rng.random_bool(0.4) {
        hands.push(match active {
            HandSide::Right => HandSide::Left,
            HandSide::Left => HandSide::Right,
        });
    }
    let skin_tones = [
        [0.93, 0.76, 0.64],
        [0.86, 0.66, 0.52],
        [0.74, 0.55, 0.42],
        [0.55, 0.39, 0.28],
    ];
    let sleeves = [
        [0.18, 0.18, 0.2],
        [0.2, 0.27, 0.42],
        [0.55, 0.55, 0.58],
        [0.12, 0.1, 0.1],
    ];
    let table_colours = [[0.66, 0.60, 0.52], [0.58, 0.58, 0.56], [0.52, 0.42, 0.33]];

    let reach_end = rng.random_range(0.28..0.34f32);
    let grasp_end = reach_end + rng.random_range(0.12..0.16);
    let move_end = grasp_end + rng.random_range(0.26..0.32);
    let place_end = move_end + rng.random_range(0.08..0.11);
    ClipPlan {
        objects,
        target,
        reference,
        relation,
        place_at,
        instruction,
        hands,
        hand_scale: rng.random_range(0.92..1.08),
        skin: skin_tones[rng.random_range(0..skin_tones.len())],
        sleeve: sleeves[rng.random_range(0..sleeves.len())],
        table_colour: table_colours[rng.random_range(0..table_colours.len())],
        camera,
        camera_moving,
        phases: [reach_end, grasp_end, move_end, place_end],
        lift: rng.random_range(0.05..0.10),
        idle_phase: rng.random_range(0.0..std::f32::consts::TAU),
    }
}
