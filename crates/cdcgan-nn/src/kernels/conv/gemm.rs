//! The one matrix product the convolutions use (the `gemm` crate over strided views), and the
//! packing of image blocks into its column order.

/// A row-major matrix view for [`gemm`]: element `(i, j)` at `ptr[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    pub(super) fn rows(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: ld,
            cs: 1,
        }
    }
    pub(super) fn transposed(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: ld,
        }
    }
    /// Whether every element of an `m x n` view lies inside the slice.
    pub(super) fn fits(&self, m: usize, n: usize) -> bool {
        m == 0 || n == 0 || (m - 1) * self.rs + (n - 1) * self.cs < self.data.len()
    }
}

/// `dst [m, n] (row-major, leading dimension ld) = (accumulate ? dst : 0) + a [m, k] · b [k, n]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ld: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
    threads: usize,
) {
    assert!(
        a.fits(m, k) && b.fits(k, n) && (m == 0 || n == 0 || (m - 1) * ld + n <= dst.len()),
        "gemm operands out of bounds"
    );
    let par = if threads > 1 {
        ::gemm::Parallelism::Rayon(threads)
    } else {
        ::gemm::Parallelism::None
    };
    // SAFETY: the assertion above keeps every element the gemm reads or writes inside the
    // slices; `dst` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// Copies image blocks `src[j] [c, p]` (j in 0..imgs) into `dst [c, imgs·p]`, or back.
pub(super) fn pack(src: &[f32], imgs: usize, c: usize, p: usize, dst: &mut [f32]) {
    let ld = imgs * p;
    for j in 0..imgs {
        for ch in 0..c {
            dst[ch * ld + j * p..ch * ld + (j + 1) * p]
                .copy_from_slice(&src[(j * c + ch) * p..(j * c + ch + 1) * p]);
        }
    }
}

pub(super) fn unpack(src: &[f32], imgs: usize, c: usize, p: usize, dst: &mut [f32]) {
    let ld = imgs * p;
    for j in 0..imgs {
        for ch in 0..c {
            dst[(j * c + ch) * p..(j * c + ch + 1) * p]
                .copy_from_slice(&src[ch * ld + j * p..ch * ld + (j + 1) * p]);
        }
    }
}
