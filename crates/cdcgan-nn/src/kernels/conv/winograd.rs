//! Winograd F(4x4, 2x2) for convolutions with a 4x4 kernel, stride 2 and padding 1.
//!
//! Such a convolution is a stride-1 "valid" 2x2 correlation of the input's four polyphase
//! planes (`x[2t + py - 1][2u + px - 1]` for the phases `py, px` in 0..2), which become
//! channels: `4·ci` of them, channel `4c + 2py + px`. Winograd's minimal filtering computes
//! each 4x4 output tile of a 2x2 correlation from a 5x5 input patch with 25 products per
//! channel pair instead of 64, so the work moves from one gemm over `ci·16` rows to 25 gemms
//! (one per transform point) over `4·ci` rows: about half the multiply-adds at `dcgan28`'s
//! 7x7 planes (tiled as 8x8), for the forward pass and both gradients.
//!
//! The three kernels are exact adjoints of each other, as in the im2col path:
//! - [`forward`]: `y = conv(x, w)`, polyphase planes in, plain planes out;
//! - [`data`]: `x = convᵀ(y, w)`, the correlation of `y` padded by one with the flipped
//!   kernel, its output planes scattered back from polyphase order;
//! - [`weight`]: `dw = Σ dy ⋆ x`, the gemms in the transform domain summed over tiles and
//!   images, then taken back to 2x2 kernels.

use rayon::prelude::*;

use super::super::{par_zeroed, split_by, with_scratch};
use super::{Geometry, Mat, gemm};

mod lanes;

use lanes::{A, At, Bt, Gk, Gt, LANES, Lane, both_axes, gather, with_simd};

/// Transform points per tile (5x5).
const POINTS: usize = 25;
/// Tiles (columns of each gemm) a chunk of images aims for. The transform-domain buffers of
/// a chunk (25 points x channels x tiles) outgrow the caches quickly: at `dcgan28`'s 7x7
/// planes, 64 tiles (16 images) ran deconv1 and conv2 forward and backward 1.3x faster than
/// 128 on one thread and 1.15x at batch 128 on two, for a little more packing of the kernels.
const TARGET_TILES: usize = 64;
/// Fewer channels than this on either side and the gemms are too thin to win.
const MIN_CHANNELS: usize = 16;
with_simd! {
    /// [`transform_inputs_body`].
    fn transform_inputs = transform_inputs_body(
        plan: &Plan,
        source: Source,
        imgs: &[f32],
        img_size: usize,
        count: usize,
        staged: &mut [f32],
        v: &mut [f32],
    )
}

with_simd! {
    /// [`transform_outputs_body`].
    fn transform_outputs = transform_outputs_body(
        plan: &Plan,
        sink: Sink,
        m: &[f32],
        count: usize,
        out: &mut [f32],
        dst_size: usize,
    )
}

with_simd! {
    /// [`transform_grads_body`].
    fn transform_grads = transform_grads_body(
        plan: &Plan,
        dy: &[f32],
        count: usize,
        staged: &mut [f32],
        z: &mut [f32],
    )
}

with_simd! {
    /// [`transform_kernel_row_body`].
    fn transform_kernel_row = transform_kernel_row_body(
        plan: &Plan,
        g: &Geometry,
        wt: &[f32],
        flip: bool,
        o: usize,
        u: &mut [f32],
    )
}

with_simd! {
    /// [`untransform_kernel_grads_body`].
    fn untransform_kernel_grads = untransform_kernel_grads_body(
        cin: usize,
        parts: &[Vec<f32>],
        at: usize,
        dw: &mut [f32],
    )
}

/// Whether the Winograd kernels compute this convolution.
pub(super) fn applies(g: &Geometry) -> bool {
    g.k == 4 && g.stride == 2 && g.padding == 1 && g.ci.min(g.co) >= MIN_CHANNELS
}

/// The 2x2 correlation behind one call: `cin` input planes to `cout` output planes of
/// `oh x ow`, in tiles of 4x4.
#[derive(Clone, Copy)]
struct Plan {
    cin: usize,
    cout: usize,
    oh: usize,
    ow: usize,
}

impl Plan {
    fn tiles_y(&self) -> usize {
        self.oh.div_ceil(4)
    }
    fn tiles_x(&self) -> usize {
        self.ow.div_ceil(4)
    }
    fn tiles(&self) -> usize {
        self.tiles_y() * self.tiles_x()
    }
    /// Side of the (zero-extended) input planes the tiles read: `4·tiles + 1`.
    fn plane(&self) -> (usize, usize) {
        (4 * self.tiles_y() + 1, 4 * self.tiles_x() + 1)
    }
    /// Images per chunk, a multiple of [`LANES`] unless the batch is smaller.
    fn chunk(&self, n: usize) -> usize {
        let want = (TARGET_TILES / self.tiles()).next_multiple_of(LANES);
        want.min(n.max(1))
    }
    /// Upper-left corner of tile `t` in the output planes.
    fn corner(&self, t: usize) -> (usize, usize) {
        (4 * (t / self.tiles_x()), 4 * (t % self.tiles_x()))
    }
}

/// Splits polyphase plane `p` into (channel, row phase, column phase).
fn phase(p: usize) -> (usize, usize, usize) {
    (p / 4, (p / 2) % 2, p % 2)
}

/// How the correlation's input planes come from an image.
#[derive(Clone, Copy)]
enum Source {
    /// The polyphase planes of `x [c, h, w]`: plane `4c + 2py + px`, element `(t, u)` is
    /// `x[c][2t + py - 1][2u + px - 1]` (zero outside).
    Phases { h: usize, w: usize },
    /// `y [c, h, w]` moved down and right by one: element `(s, u)` is `y[c][s - 1][u - 1]`.
    Shifted { h: usize, w: usize },
}

impl Source {
    /// Writes plane `p` of `img` as lane `j` of `out [rows, pw, lanes]`, leaving the elements
    /// outside the image as they are (zero).
    fn write(&self, img: &[f32], p: usize, out: &mut [f32], pw: usize, lanes: usize, j: usize) {
        let at = |r: usize, c: usize| (r * pw + c) * lanes + j;
        match *self {
            Source::Phases { h, w } => {
                let (c, py, px) = phase(p);
                let src = &img[c * h * w..(c + 1) * h * w];
                // Row t holds image row 2t + py - 1, column u image column 2u + px - 1.
                for t in (1 - py)..(h + 2 - py) / 2 {
                    let line = &src[(2 * t + py - 1) * w..][..w];
                    for u in (1 - px)..(w + 2 - px) / 2 {
                        out[at(t, u)] = line[2 * u + px - 1];
                    }
                }
            }
            Source::Shifted { h, w } => {
                let src = &img[p * h * w..(p + 1) * h * w];
                for (s, line) in src.chunks_exact(w).enumerate() {
                    for (u, v) in line.iter().enumerate() {
                        out[at(s + 1, u + 1)] = *v;
                    }
                }
            }
        }
    }
}

/// Where the correlation's output planes go in an image.
#[derive(Clone, Copy)]
enum Sink {
    /// Planes of `y [c, h, w]` as they are.
    Plain { h: usize, w: usize },
    /// Polyphase planes of `x [c, h, w]`, as in [`Source::Phases`].
    Phases { h: usize, w: usize },
}

impl Sink {
    /// The index in the image of element `(oy, ox)` of output plane `p`, if it has one.
    fn target(&self, p: usize, oy: usize, ox: usize) -> Option<usize> {
        match *self {
            Sink::Plain { h, w } => (oy < h && ox < w).then(|| (p * h + oy) * w + ox),
            Sink::Phases { h, w } => {
                let (c, py, px) = phase(p);
                let iy = (2 * oy + py).checked_sub(1).filter(|&v| v < h)?;
                let ix = (2 * ox + px).checked_sub(1).filter(|&v| v < w)?;
                Some((c * h + iy) * w + ix)
            }
        }
    }
}

/// Scratch sizes of one chunk: staged planes, transformed inputs, transform-domain outputs.
fn scratch_sizes(plan: &Plan, chunk: usize) -> [usize; 3] {
    let (ph, pw) = plan.plane();
    let lanes = chunk.next_multiple_of(LANES);
    let cols = plan.tiles() * lanes;
    [
        ph * pw * lanes,
        POINTS * plan.cin * cols,
        POINTS * plan.cout * cols,
    ]
}

/// Transforms the input planes of `count` images into `v [cin][25][tiles·lanes]`, column
/// `t·lanes + j` for tile `t` of image `j` (`lanes`: `count` rounded up to [`LANES`]).
#[inline(always)]
fn transform_inputs_body(
    plan: &Plan,
    source: Source,
    imgs: &[f32],
    img_size: usize,
    count: usize,
    staged: &mut [f32],
    v: &mut [f32],
) {
    let (ph, pw) = plan.plane();
    let lanes = count.next_multiple_of(LANES);
    let cols = plan.tiles() * lanes;
    let staged = &mut staged[..ph * pw * lanes];
    for p in 0..plan.cin {
        staged.fill(0.0);
        for (j, img) in imgs.chunks_exact(img_size).take(count).enumerate() {
            source.write(img, p, staged, pw, lanes, j);
        }
        for t in 0..plan.tiles() {
            let (y0, x0) = plan.corner(t);
            for j0 in (0..lanes).step_by(LANES) {
                let d: [[Lane; 5]; 5] =
                    gather(staged, |a, b| ((y0 + a) * pw + x0 + b) * lanes + j0);
                let tr = both_axes::<_, _, Bt>(&d);
                for (xi, val) in tr.iter().flatten().enumerate() {
                    let at = (p * POINTS + xi) * cols + t * lanes + j0;
                    v[at..at + LANES].copy_from_slice(val);
                }
            }
        }
    }
}

/// `u [cout][25][cin]`, the transformed 2x2 kernels of `wt`: row `o` holds the kernels from
/// every input plane `i` to output plane `o`, which are [`phase_kernel`]`(o, i)` for the
/// forward correlation and `(i, o)` turned by 180 degrees (`flip`) for its adjoint.
fn transform_kernels(plan: &Plan, g: &Geometry, wt: &[f32], flip: bool) -> Vec<f32> {
    par_zeroed(plan.cout * POINTS * plan.cin, POINTS * plan.cin, |o, u| {
        transform_kernel_row(plan, g, wt, flip, o, u)
    })
}

/// Row `o` of [`transform_kernels`] (`G · k · Gᵀ` for each kernel), [`LANES`] kernels at a
/// time.
#[inline(always)]
fn transform_kernel_row_body(
    plan: &Plan,
    g: &Geometry,
    wt: &[f32],
    flip: bool,
    o: usize,
    u: &mut [f32],
) {
    let cin = plan.cin;
    for i0 in (0..cin).step_by(LANES) {
        let live = LANES.min(cin - i0);
        let mut k = [[[0f32; LANES]; 2]; 2];
        for l in 0..live {
            let taps = if flip {
                phase_kernel(g, wt, i0 + l, o, true)
            } else {
                phase_kernel(g, wt, o, i0 + l, false)
            };
            for (row, taps) in k.iter_mut().zip(taps) {
                for (lane, tap) in row.iter_mut().zip(taps) {
                    lane[l] = tap;
                }
            }
        }
        for (xi, val) in both_axes::<_, _, Gk>(&k).iter().flatten().enumerate() {
            u[xi * cin + i0..][..live].copy_from_slice(&val[..live]);
        }
    }
}

/// Takes the weight gradient of one output channel from the transform domain back to 2x2
/// kernels (`Gᵀ · dU · G`) and writes them into its 4x4 kernels `dw [ci, 4, 4]`, [`LANES`]
/// kernels at a time. `dU [25][cin]` is the sum of the threads' partial sums `parts`, read
/// from offset `at` of each: summed here, as the kernels are gathered, rather than in a pass
/// of its own over the whole (up to 13 MB) buffers.
#[inline(always)]
fn untransform_kernel_grads_body(cin: usize, parts: &[Vec<f32>], at: usize, dw: &mut [f32]) {
    for p0 in (0..cin).step_by(LANES) {
        let live = LANES.min(cin - p0);
        let mut m = [[[0f32; LANES]; 5]; 5];
        for (a, row) in m.iter_mut().enumerate() {
            for (b, lane) in row.iter_mut().enumerate() {
                for part in parts {
                    let src = &part[at + (a * 5 + b) * cin + p0..][..live];
                    for (sum, v) in lane.iter_mut().zip(src) {
                        *sum += v;
                    }
                }
            }
        }
        let k = both_axes::<_, _, Gt>(&m);
        for l in 0..live {
            let (c, py, px) = phase(p0 + l);
            for (a, row) in k.iter().enumerate() {
                for (b, lane) in row.iter().enumerate() {
                    dw[c * 16 + (2 * a + py) * 4 + 2 * b + px] = lane[l];
                }
            }
        }
    }
}

/// Runs the correlation over `n` images of `src` into `n` images of `dst_size` values each,
/// returned. Each output element is written at most once (phases never overlap); the rest
/// stay zero.
fn correlate(
    plan: &Plan,
    n: usize,
    (source, src, src_size): (Source, &[f32], usize),
    u: &[f32],
    (sink, dst_size): (Sink, usize),
) -> Vec<f32> {
    let (per_task, gemm_threads) = split_by(n, LANES);
    let chunk = plan.chunk(per_task);
    let (cin, cout, tiles) = (plan.cin, plan.cout, plan.tiles());
    par_zeroed(n * dst_size, per_task * dst_size, |task, dst| {
        let src = &src[task * per_task * src_size..];
        let imgs = dst.len() / dst_size;
        with_scratch(scratch_sizes(plan, chunk), |[staged, v, m]| {
            for start in (0..imgs).step_by(chunk) {
                let count = chunk.min(imgs - start);
                let lanes = count.next_multiple_of(LANES);
                let cols = tiles * lanes;
                let src = &src[start * src_size..];
                transform_inputs(plan, source, src, src_size, count, staged, v);
                for xi in 0..POINTS {
                    gemm(
                        cout,
                        cols,
                        cin,
                        &mut m[xi * cols..cout * POINTS * cols],
                        POINTS * cols,
                        false,
                        Mat::rows(&u[xi * cin..], POINTS * cin),
                        Mat::rows(&v[xi * cols..], POINTS * cols),
                        gemm_threads,
                    );
                }
                let out = &mut dst[start * dst_size..(start + count) * dst_size];
                transform_outputs(plan, sink, m, count, out, dst_size);
            }
        })
    })
}

/// Takes the products `m [cout][25][tiles·lanes]` of `count` images back to output tiles
/// (`Aᵀ · m · A`) and writes them to `out [count][dst_size]` through `sink`.
#[inline(always)]
fn transform_outputs_body(
    plan: &Plan,
    sink: Sink,
    m: &[f32],
    count: usize,
    out: &mut [f32],
    dst_size: usize,
) {
    let (cout, tiles) = (plan.cout, plan.tiles());
    let lanes = count.next_multiple_of(LANES);
    let cols = tiles * lanes;
    for o in 0..cout {
        for t in 0..tiles {
            let (y0, x0) = plan.corner(t);
            let mut targets = [[None; 4]; 4];
            for (a, row) in targets.iter_mut().enumerate() {
                for (b, target) in row.iter_mut().enumerate() {
                    let (oy, ox) = (y0 + a, x0 + b);
                    if oy < plan.oh && ox < plan.ow {
                        *target = sink.target(o, oy, ox);
                    }
                }
            }
            for j0 in (0..lanes).step_by(LANES) {
                let mm: [[Lane; 5]; 5] =
                    gather(m, |a, b| (o * POINTS + a * 5 + b) * cols + t * lanes + j0);
                let y = both_axes::<_, _, At>(&mm);
                let live = LANES.min(count - j0);
                for (row, trow) in y.iter().zip(&targets) {
                    for (val, target) in row.iter().zip(trow) {
                        if let Some(at) = *target {
                            for (l, v) in val.iter().enumerate().take(live) {
                                out[(j0 + l) * dst_size + at] = *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The 2x2 kernel between output channel `o` and polyphase plane `p = 4c + 2py + px`: taps
/// `w[o][c][2a + py][2b + px]`, turned by 180 degrees if `flip` (for the adjoint).
fn phase_kernel(g: &Geometry, wt: &[f32], o: usize, p: usize, flip: bool) -> [[f32; 2]; 2] {
    let (c, py, px) = phase(p);
    let base = (o * g.ci + c) * 16;
    let tap = |a: usize, b: usize| {
        let (a, b) = if flip { (1 - a, 1 - b) } else { (a, b) };
        wt[base + (2 * a + py) * 4 + 2 * b + px]
    };
    [[tap(0, 0), tap(0, 1)], [tap(1, 0), tap(1, 1)]]
}

/// `y [n, co, ho, wo] = conv(x [n, ci, h, w], w [co, ci, 4, 4])`, stride 2, padding 1.
pub(super) fn forward(g: &Geometry, x: &[f32], wt: &[f32]) -> Vec<f32> {
    let plan = Plan {
        cin: 4 * g.ci,
        cout: g.co,
        oh: g.ho,
        ow: g.wo,
    };
    let u = transform_kernels(&plan, g, wt, false);
    correlate(
        &plan,
        g.n,
        (Source::Phases { h: g.h, w: g.w }, x, g.in_size()),
        &u,
        (Sink::Plain { h: g.ho, w: g.wo }, g.out_size()),
    )
}

/// `x [n, ci, h, w] = convᵀ(y [n, co, ho, wo], w [co, ci, 4, 4])`: the adjoint of
/// [`forward`].
pub(super) fn data(g: &Geometry, y: &[f32], wt: &[f32]) -> Vec<f32> {
    let plan = Plan {
        cin: g.co,
        cout: 4 * g.ci,
        oh: g.ho + 1,
        ow: g.wo + 1,
    };
    // Output plane p from input channel o: the flipped kernels of `forward`.
    let u = transform_kernels(&plan, g, wt, true);
    correlate(
        &plan,
        g.n,
        (Source::Shifted { h: g.ho, w: g.wo }, y, g.out_size()),
        &u,
        (Sink::Phases { h: g.h, w: g.w }, g.in_size()),
    )
}

/// Transforms the output-gradient tiles of `count` images, `dy [count][cout, oh, ow]`, into
/// `z [cout][25][tiles·lanes]` (`A · dy · Aᵀ`, the adjoint of the output transform).
#[inline(always)]
fn transform_grads_body(plan: &Plan, dy: &[f32], count: usize, staged: &mut [f32], z: &mut [f32]) {
    let (oh, ow, cout, tiles) = (plan.oh, plan.ow, plan.cout, plan.tiles());
    let qw = 4 * plan.tiles_x();
    let lanes = count.next_multiple_of(LANES);
    let cols = tiles * lanes;
    let staged = &mut staged[..4 * plan.tiles_y() * qw * lanes];
    for o in 0..cout {
        staged.fill(0.0);
        for j in 0..count {
            let plane = &dy[(j * cout + o) * oh * ow..][..oh * ow];
            for (r, line) in plane.chunks_exact(ow).enumerate() {
                for (c, v) in line.iter().enumerate() {
                    staged[(r * qw + c) * lanes + j] = *v;
                }
            }
        }
        for t in 0..tiles {
            let (y0, x0) = plan.corner(t);
            for j0 in (0..lanes).step_by(LANES) {
                let d: [[Lane; 4]; 4] =
                    gather(staged, |a, b| ((y0 + a) * qw + x0 + b) * lanes + j0);
                let tr = both_axes::<_, _, A>(&d);
                for (xi, val) in tr.iter().flatten().enumerate() {
                    let at = (o * POINTS + xi) * cols + t * lanes + j0;
                    z[at..at + LANES].copy_from_slice(val);
                }
            }
        }
    }
}

/// `dw [co, ci, 4, 4] = Σ_images dy ⋆ x`: the weight gradient of [`forward`].
pub(super) fn weight(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let plan = Plan {
        cin: 4 * g.ci,
        cout: g.co,
        oh: g.ho,
        ow: g.wo,
    };
    let (cin, cout, tiles) = (plan.cin, plan.cout, plan.tiles());
    let size = cout * POINTS * cin;
    let dw_len = g.co * g.ci * 16;
    if g.n == 0 || dw_len == 0 {
        return vec![0f32; dw_len];
    }
    let (per_task, gemm_threads) = split_by(g.n, LANES);
    let chunk = plan.chunk(per_task);
    let source = Source::Phases { h: g.h, w: g.w };
    let (in_size, out_size) = (g.in_size(), g.out_size());
    let partial: Vec<Vec<f32>> = x
        .par_chunks(per_task * in_size)
        .zip(dy.par_chunks(per_task * out_size))
        .map(|(x, dy)| {
            let imgs = x.len() / in_size;
            // du [cout][25][cin], as the kernels' transform.
            let mut du = vec![0f32; size];
            // The third buffer holds z (25·cout·cols, as the products of `correlate`); the
            // staged planes also hold dy's 4·tiles-wide planes, which are smaller.
            with_scratch(scratch_sizes(&plan, chunk), |[staged, v, z]| {
                for start in (0..imgs).step_by(chunk) {
                    let count = chunk.min(imgs - start);
                    let cols = tiles * count.next_multiple_of(LANES);
                    let xs = &x[start * in_size..];
                    transform_inputs(&plan, source, xs, in_size, count, staged, v);
                    transform_grads(&plan, &dy[start * out_size..], count, staged, z);
                    for xi in 0..POINTS {
                        gemm(
                            cout,
                            cin,
                            cols,
                            &mut du[xi * cin..],
                            POINTS * cin,
                            start > 0,
                            Mat::rows(&z[xi * cols..], POINTS * cols),
                            Mat::transposed(&v[xi * cols..], POINTS * cols),
                            gemm_threads,
                        );
                    }
                }
            });
            du
        })
        .collect();
    // Back to 2x2 kernels (Gᵀ · dU · G), summing the partials, and to the 4x4 layout.
    par_zeroed(dw_len, g.ci * 16, |o, dw| {
        untransform_kernel_grads(cin, &partial, o * POINTS * cin, dw)
    })
}

#[cfg(test)]
mod tests {
    use super::lanes::{a_1d, at_1d, bt_1d, g_1d, gt_1d};
    use super::*;

    /// Kernel transform.
    const G: [[f32; 2]; 5] = [
        [0.5, 0.],
        [-0.5, -0.5],
        [-1. / 6., 1. / 6.],
        [1. / 6., 1. / 3.],
        [0., 1.],
    ];
    /// Input transform.
    const BT: [[f32; 5]; 5] = [
        [2., -1., -2., 1., 0.],
        [0., -2., -1., 1., 0.],
        [0., 2., -3., 1., 0.],
        [0., -1., 0., 1., 0.],
        [0., 2., -1., -2., 1.],
    ];
    /// Output transform.
    const AT: [[f32; 5]; 4] = [
        [1., 1., 1., 1., 0.],
        [0., 1., -1., 2., 0.],
        [0., 1., 1., 4., 0.],
        [0., 1., -1., 8., 1.],
    ];

    /// `mᵀ`.
    const fn transpose<const R: usize, const C: usize>(m: [[f32; C]; R]) -> [[f32; R]; C] {
        let mut t = [[0f32; R]; C];
        let mut i = 0;
        while i < R {
            let mut j = 0;
            while j < C {
                t[j][i] = m[i][j];
                j += 1;
            }
            i += 1;
        }
        t
    }

    /// Lane `l` of every row of `f(columns)`, against the matrix product `m · column`.
    fn check_1d<const N: usize, const M: usize>(
        f: impl Fn(&[Lane; N]) -> [Lane; M],
        m: &[[f32; N]; M],
    ) {
        let d: [Lane; N] =
            std::array::from_fn(|a| std::array::from_fn(|l| (a * 7 + l * 3) as f32 * 0.37 - 1.5));
        let got = f(&d);
        for l in 0..LANES {
            for (i, row) in m.iter().enumerate() {
                let want: f32 = row.iter().zip(&d).map(|(a, v)| a * v[l]).sum();
                assert!(
                    (got[i][l] - want).abs() < 1e-5,
                    "row {i} lane {l}: {} vs {want}",
                    got[i][l]
                );
            }
        }
    }

    #[test]
    fn written_out_transforms_are_the_matrices() {
        check_1d(bt_1d, &BT);
        check_1d(at_1d, &AT);
        check_1d(a_1d, &transpose(AT));
        check_1d(g_1d, &G);
        check_1d(gt_1d, &transpose(G));
    }

    /// The 1-d identity behind the tiles: `AT · ((G·g) ⊙ (BT·d)) = correlation of d with g`.
    #[test]
    fn transforms_compute_a_correlation() {
        let d = [0.3f32, -1.2, 2.5, 0.7, -0.4];
        let g = [1.5f32, -0.6];
        let gd: Vec<f32> = G.iter().map(|r| r[0] * g[0] + r[1] * g[1]).collect();
        let bd: Vec<f32> = BT
            .iter()
            .map(|r| r.iter().zip(&d).map(|(a, b)| a * b).sum())
            .collect();
        for (i, row) in AT.iter().enumerate() {
            let got: f32 = row
                .iter()
                .zip(gd.iter().zip(&bd))
                .map(|(a, (b, c))| a * b * c)
                .sum();
            let want = d[i] * g[0] + d[i + 1] * g[1];
            assert!((got - want).abs() < 1e-5, "{i}: {got} vs {want}");
        }
    }

    /// The plain im2col kernels' results at channel counts too small to dispatch here.
    fn check_against_im2col(n: usize, ci: usize, co: usize, h: usize, w: usize) {
        let g = Geometry::new((n, ci, h, w), (co, ci, 4, 4), 2, 1).unwrap();
        let mut s = 7u64 + (n * 131 + ci * 17 + co * 5 + h * 3 + w) as u64;
        let mut rand = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect()
        };
        let (x, wt, dy) = (
            rand(n * g.in_size()),
            rand(co * ci * 16),
            rand(n * g.out_size()),
        );
        let close = |a: &[f32], b: &[f32], what: &str| {
            let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
            let err = a.iter().zip(b).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err / scale < 1e-5,
                "{what} {n} {ci} {co} {h}x{w}: {err} of {scale}"
            );
        };
        close(
            &forward(&g, &x, &wt),
            &super::super::im2col_forward(&g, &x, &wt),
            "forward",
        );
        close(
            &data(&g, &dy, &wt),
            &super::super::im2col_data(&g, &dy, &wt),
            "data",
        );
        close(
            &weight(&g, &x, &dy),
            &super::super::im2col_weight(&g, &x, &dy),
            "weight",
        );
    }

    #[test]
    fn matches_im2col_on_odd_and_even_sides() {
        for (n, ci, co, h, w) in [
            (1, 1, 1, 2, 2),
            (2, 3, 2, 14, 14),
            (3, 2, 5, 7, 9),
            (1, 4, 3, 28, 13),
            (5, 2, 2, 2, 6),
            (70, 2, 3, 14, 14), // several chunks and threads
        ] {
            check_against_im2col(n, ci, co, h, w);
        }
    }
}
