//! The lane arithmetic of the Winograd kernels: [`LANES`] images at a time, the 1-d
//! transforms over lanes and their 2-d application, and `with_simd!`, which compiles a kernel
//! body for AVX-512 and AVX2 and picks one at run time.

/// Images whose tiles the transforms handle together, one per SIMD lane: 16 f32, one cache
/// line, one AVX-512 register (two AVX2 ones). Against 8, deconv1 and conv2's gradients at batch
/// 64 took 10-20% less time on one thread, with AVX2 code as with AVX-512.
pub(super) const LANES: usize = 16;
/// One value of [`LANES`] images.
pub(super) type Lane = [f32; LANES];

/// `Bᵀ · d` along one axis, lane by lane (the rows of `Bᵀ` written out).
#[inline(always)]
pub(super) fn bt_1d(d: &[Lane; 5]) -> [Lane; 5] {
    let mut r = [[0f32; LANES]; 5];
    for l in 0..LANES {
        let (d0, d1, d2, d3, d4) = (d[0][l], d[1][l], d[2][l], d[3][l], d[4][l]);
        r[0][l] = 2.0 * (d0 - d2) - d1 + d3;
        r[1][l] = d3 - d2 - 2.0 * d1;
        r[2][l] = 2.0 * d1 - 3.0 * d2 + d3;
        r[3][l] = d3 - d1;
        r[4][l] = 2.0 * (d1 - d3) - d2 + d4;
    }
    r
}

/// `Aᵀ · m` along one axis, lane by lane (the rows of `Aᵀ`).
#[inline(always)]
pub(super) fn at_1d(m: &[Lane; 5]) -> [Lane; 4] {
    let mut r = [[0f32; LANES]; 4];
    for l in 0..LANES {
        let (m0, m1, m2, m3, m4) = (m[0][l], m[1][l], m[2][l], m[3][l], m[4][l]);
        let (sum, diff) = (m1 + m2, m1 - m2);
        r[0][l] = m0 + sum + m3;
        r[1][l] = diff + 2.0 * m3;
        r[2][l] = sum + 4.0 * m3;
        r[3][l] = diff + 8.0 * m3 + m4;
    }
    r
}

/// `A · d` along one axis, lane by lane (the rows of `A`): the adjoint of [`at_1d`].
#[inline(always)]
pub(super) fn a_1d(d: &[Lane; 4]) -> [Lane; 5] {
    let mut r = [[0f32; LANES]; 5];
    for l in 0..LANES {
        let (d0, d1, d2, d3) = (d[0][l], d[1][l], d[2][l], d[3][l]);
        let (even, odd) = (d0 + d2, d1 + d3);
        r[0][l] = d0;
        r[1][l] = even + odd;
        r[2][l] = even - odd;
        r[3][l] = d0 + 2.0 * d1 + 4.0 * d2 + 8.0 * d3;
        r[4][l] = d3;
    }
    r
}

/// `G · g` along one axis, lane by lane: the kernel transform for the transform points 0, 1,
/// -1, 2 and infinity (Lavin and Gray's construction; the rows of `G` written out).
#[inline(always)]
pub(super) fn g_1d(g: &[Lane; 2]) -> [Lane; 5] {
    let mut r = [[0f32; LANES]; 5];
    for l in 0..LANES {
        let (g0, g1) = (g[0][l], g[1][l]);
        r[0][l] = 0.5 * g0;
        r[1][l] = -0.5 * (g0 + g1);
        r[2][l] = (g1 - g0) * (1.0 / 6.0);
        r[3][l] = g0 * (1.0 / 6.0) + g1 * (1.0 / 3.0);
        r[4][l] = g1;
    }
    r
}

/// `Gᵀ · m` along one axis, lane by lane: the adjoint of [`g_1d`], which takes a gradient in
/// the transform domain back to 2x2 kernels.
#[inline(always)]
pub(super) fn gt_1d(m: &[Lane; 5]) -> [Lane; 2] {
    let mut r = [[0f32; LANES]; 2];
    for l in 0..LANES {
        let (m0, m1, m2, m3, m4) = (m[0][l], m[1][l], m[2][l], m[3][l], m[4][l]);
        r[0][l] = 0.5 * (m0 - m1) + (m3 - m2) * (1.0 / 6.0);
        r[1][l] = (m2 + 2.0 * m3) * (1.0 / 6.0) - 0.5 * m1 + m4;
    }
    r
}

/// A 1-d transform along one axis, lane by lane. Static dispatch through a trait whose one
/// method is always inlined: passed as a plain `fn`, the transform was called through a shim
/// that was not inlined, compiled without AVX2 and entered with a `vzeroupper` each time.
pub(super) trait Axis<const N: usize, const M: usize> {
    fn apply(d: &[Lane; N]) -> [Lane; M];
}

/// Defines the unit struct `$name`, whose [`Axis`] is the 1-d transform `$f`.
macro_rules! axis {
    ($(#[$doc:meta])* $name:ident: $n:literal -> $m:literal = $f:ident) => {
        $(#[$doc])*
        pub(super) struct $name;
        impl Axis<$n, $m> for $name {
            #[inline(always)]
            fn apply(d: &[Lane; $n]) -> [Lane; $m] {
                $f(d)
            }
        }
    };
}

axis!(/** [`bt_1d`], the input transform. */ Bt: 5 -> 5 = bt_1d);
axis!(/** [`at_1d`], the output transform. */ At: 5 -> 4 = at_1d);
axis!(/** [`a_1d`], the output-gradient transform. */ A: 4 -> 5 = a_1d);
axis!(/** [`g_1d`], the kernel transform. */ Gk: 2 -> 5 = g_1d);
axis!(/** [`gt_1d`], the kernel-gradient transform. */ Gt: 5 -> 2 = gt_1d);

/// `F` applied to every column of `d`, then to every row: `F · d · Fᵀ` for a 1-d transform `F`.
///
/// Plain loops over zeroed arrays: `std::array::from_fn` over lane arrays compiled to calls
/// to `memmove` that took 14% of a training step.
#[inline(always)]
pub(super) fn both_axes<const N: usize, const M: usize, F: Axis<N, M>>(
    d: &[[Lane; N]; N],
) -> [[Lane; M]; M] {
    let mut line = [[0f32; LANES]; N];
    let mut cols = [[[0f32; LANES]; M]; N]; // cols[b] = F · d[.][b]
    for (b, col) in cols.iter_mut().enumerate() {
        for (l, row) in line.iter_mut().zip(d) {
            *l = row[b];
        }
        *col = F::apply(&line);
    }
    let mut out = [[[0f32; LANES]; M]; M];
    for (i, o) in out.iter_mut().enumerate() {
        for (l, col) in line.iter_mut().zip(&cols) {
            *l = col[i];
        }
        *o = F::apply(&line);
    }
    out
}

/// The `R x C` lanes starting at `src[at(r, c)]`.
#[inline(always)]
pub(super) fn gather<const R: usize, const C: usize>(
    src: &[f32],
    at: impl Fn(usize, usize) -> usize,
) -> [[Lane; C]; R] {
    let mut d = [[[0f32; LANES]; C]; R];
    for (r, row) in d.iter_mut().enumerate() {
        for (c, lane) in row.iter_mut().enumerate() {
            let i = at(r, c);
            lane.copy_from_slice(&src[i..i + LANES]);
        }
    }
    d
}

/// Defines `$name`, which runs `$body` compiled for AVX-512 or AVX2 where the CPU has it (a
/// lane array is then one or two registers, and a 5x5 tile of them fits AVX-512's 32) and
/// for the baseline target elsewhere.
macro_rules! with_simd {
    ($(#[$meta:meta])* fn $name:ident = $body:ident($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, the only feature `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, the only feature `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(super) use with_simd;
