//! Index buffers: fallible allocation (failure is an error, never an abort) and the element
//! types handed to NumPy (`u32` when every index fits, else `i64`, torch's index type).

use crate::util::error::Error;
use std::alloc::{alloc_zeroed, Layout};

/// An element of an index buffer.
pub trait IndexElem: Copy + Send + Sync + Default + 'static {
    /// Converts an index known to fit.
    fn from_u64(v: u64) -> Self;
    /// The index as `u64`.
    fn to_u64(self) -> u64;
}

impl IndexElem for u32 {
    #[inline(always)]
    fn from_u64(v: u64) -> Self {
        v as u32
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
}

impl IndexElem for u64 {
    #[inline(always)]
    fn from_u64(v: u64) -> Self {
        v
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        self
    }
}

impl IndexElem for i64 {
    #[inline(always)]
    fn from_u64(v: u64) -> Self {
        v as i64
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        self as u64
    }
}

/// Largest dataset length whose indices all fit in `u32`.
pub const U32_MAX_LEN: u64 = 1 << 32;

/// An owned index buffer of the narrowest type for its dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexVec {
    U32(Vec<u32>),
    I64(Vec<i64>),
}

impl IndexVec {
    /// A zeroed buffer of `len` elements for indices below `n`.
    pub fn zeroed(len: u64, n: u64) -> Result<Self, Error> {
        if n <= U32_MAX_LEN {
            Ok(IndexVec::U32(zeroed_vec(len)?))
        } else {
            Ok(IndexVec::I64(zeroed_vec(len)?))
        }
    }

    pub fn len(&self) -> usize {
        match self {
            IndexVec::U32(v) => v.len(),
            IndexVec::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `j` as `u64`.
    #[inline(always)]
    pub fn get(&self, j: usize) -> u64 {
        self.as_slice().get(j)
    }

    pub fn as_slice(&self) -> IndexSlice<'_> {
        match self {
            IndexVec::U32(v) => IndexSlice::U32(v),
            IndexVec::I64(v) => IndexSlice::I64(v),
        }
    }

    pub fn as_mut_slice(&mut self) -> IndexSliceMut<'_> {
        match self {
            IndexVec::U32(v) => IndexSliceMut::U32(v),
            IndexVec::I64(v) => IndexSliceMut::I64(v),
        }
    }
}

/// A borrowed index buffer (e.g. a stored epoch, viewed by NumPy without a copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexSlice<'a> {
    U32(&'a [u32]),
    I64(&'a [i64]),
}

impl<'a> IndexSlice<'a> {
    pub fn len(&self) -> usize {
        match self {
            IndexSlice::U32(v) => v.len(),
            IndexSlice::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `j` as `u64`.
    #[inline(always)]
    pub fn get(&self, j: usize) -> u64 {
        match self {
            IndexSlice::U32(v) => u64::from(v[j]),
            IndexSlice::I64(v) => v[j] as u64,
        }
    }

    /// The elements from `start` on (none when `start >= len()`).
    pub fn tail(self, start: u64) -> Self {
        let s = usize::try_from(start).unwrap_or(usize::MAX).min(self.len());
        match self {
            IndexSlice::U32(v) => IndexSlice::U32(&v[s..]),
            IndexSlice::I64(v) => IndexSlice::I64(&v[s..]),
        }
    }

    /// `out[k]` = element `start + k`, widened to `u64`.
    pub fn widen_into(&self, start: usize, out: &mut [u64]) {
        match self {
            IndexSlice::U32(v) => {
                for (o, &x) in out.iter_mut().zip(&v[start..]) {
                    *o = u64::from(x);
                }
            }
            IndexSlice::I64(v) => {
                for (o, &x) in out.iter_mut().zip(&v[start..]) {
                    *o = x as u64;
                }
            }
        }
    }

    /// A copy in a buffer of its own.
    pub fn to_vec(&self) -> Result<IndexVec, Error> {
        fn copy<T: IndexElem>(src: &[T]) -> Result<Vec<T>, Error> {
            let mut v = zeroed_vec(src.len() as u64)?;
            v.copy_from_slice(src);
            Ok(v)
        }
        Ok(match self {
            IndexSlice::U32(v) => IndexVec::U32(copy(v)?),
            IndexSlice::I64(v) => IndexVec::I64(copy(v)?),
        })
    }
}

/// A mutably borrowed index buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum IndexSliceMut<'a> {
    U32(&'a mut [u32]),
    I64(&'a mut [i64]),
}

/// A zero-filled `Vec<T>` of exactly `len` elements, or `Error::Alloc`.
///
/// Zeroed memory from the allocator is mapped lazily by the kernel, so this costs no writes;
/// large buffers are advised to use transparent huge pages, which cuts page faults and TLB
/// misses for the random accesses of a shuffle.
pub fn zeroed_vec<T: IndexElem>(len: u64) -> Result<Vec<T>, Error> {
    let bytes = u128::from(len) * std::mem::size_of::<T>() as u128;
    let len = usize::try_from(len).map_err(|_| Error::Alloc { bytes })?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let layout = Layout::array::<T>(len).map_err(|_| Error::Alloc { bytes })?;
    // SAFETY: `layout` has non-zero size; a null return is handled below.
    let ptr = unsafe { alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return Err(Error::Alloc { bytes });
    }
    advise_huge_pages(ptr.cast(), layout.size());
    // SAFETY: allocated by the global allocator with the layout of `[T; len]`, and all-zero
    // bytes are a valid `T` (an integer) for every element.
    Ok(unsafe { Vec::from_raw_parts(ptr, len, len) })
}

/// A `Vec` of `len` copies of `value`, or `Error::Alloc` (for the small working buffers of
/// helper threads, which must not abort the process when memory is short).
pub fn filled_vec<T: Clone>(len: usize, value: T) -> Result<Vec<T>, Error> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::Alloc {
        bytes: len as u128 * std::mem::size_of::<T>() as u128,
    })?;
    v.resize(len, value);
    Ok(v)
}

/// Asks for transparent huge pages on the whole pages inside `[ptr, ptr + size)`.
#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, size: usize) {
    const HUGE: usize = 2 << 20;
    if size < 4 * HUGE {
        return;
    }
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + size) & !(HUGE - 1);
    if end > start {
        // SAFETY: the range lies inside our own live allocation; madvise only changes how the
        // kernel backs it and a failure is harmless, so its result is ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _size: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_u32_up_to_2_pow_32() {
        assert!(matches!(
            IndexVec::zeroed(3, 1 << 32).unwrap(),
            IndexVec::U32(_)
        ));
        assert!(matches!(
            IndexVec::zeroed(3, (1 << 32) + 1).unwrap(),
            IndexVec::I64(_)
        ));
    }

    #[test]
    fn zeroed_is_zero() {
        let v: Vec<u32> = zeroed_vec(10_000_000).unwrap();
        assert_eq!(v.len(), 10_000_000);
        assert!(v.iter().all(|&x| x == 0));
    }

    #[test]
    fn impossible_allocation_is_an_error() {
        assert!(matches!(
            zeroed_vec::<u32>(1 << 62),
            Err(Error::Alloc { .. })
        ));
        assert!(matches!(
            zeroed_vec::<i64>(u64::MAX),
            Err(Error::Alloc { .. })
        ));
    }
}
