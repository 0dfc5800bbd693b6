//! The IDX file format: a bounded, validating reader and a writer, raw or gzip.
//!
//! An IDX file is `00 00 <dtype> <ndims>`, then `ndims` big-endian `u32` dimensions, then the
//! data in row-major order. Gzip input is recognised by its magic bytes, not by the file name.
//!
//! ```
//! use mnist_data::{Compression, IdxArray};
//!
//! let array = IdxArray::new(vec![2, 3], vec![1, 2, 3, 4, 5, 6])?;
//! let bytes = array.to_bytes(Compression::Gzip)?;
//! assert_eq!(IdxArray::from_bytes(&bytes)?, array);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The reader never allocates more than the input justifies: a raw file's data must be exactly
//! as long as its dimensions say, and a gzip stream cannot claim more data than its compressed
//! size could possibly expand to (deflate's ratio is bounded at about 1032:1).

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::error::{Error, FormatError};

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// An upper bound on deflate's expansion ratio (the format's limit is 1032:1), plus header slack.
const MAX_DEFLATE_RATIO: u64 = 1032;
const GZIP_SLACK: u64 = 1 << 10;
/// Largest up-front reservation when the final size is only an upper bound (gzip input).
const MAX_RESERVE: u64 = 64 << 20;

/// The element types the IDX format defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxDtype {
    /// `0x08`, unsigned byte: the only type MNIST uses and this crate reads.
    U8,
    /// `0x09`, signed byte.
    I8,
    /// `0x0B`, big-endian `i16`.
    I16,
    /// `0x0C`, big-endian `i32`.
    I32,
    /// `0x0D`, big-endian `f32`.
    F32,
    /// `0x0E`, big-endian `f64`.
    F64,
}

impl IdxDtype {
    /// The dtype for a type byte, if the format defines one.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x08 => Self::U8,
            0x09 => Self::I8,
            0x0B => Self::I16,
            0x0C => Self::I32,
            0x0D => Self::F32,
            0x0E => Self::F64,
            _ => return None,
        })
    }

    /// The type byte of this dtype.
    pub fn code(self) -> u8 {
        match self {
            Self::U8 => 0x08,
            Self::I8 => 0x09,
            Self::I16 => 0x0B,
            Self::I32 => 0x0C,
            Self::F32 => 0x0D,
            Self::F64 => 0x0E,
        }
    }
}

/// Whether to gzip the output of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain IDX bytes.
    #[default]
    None,
    /// Gzip-compressed IDX bytes (the form MNIST is distributed in).
    Gzip,
}

/// An n-dimensional array of unsigned bytes, as stored in an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// The parsed header: dimensions and the exact data length they call for.
struct Header {
    dims: Vec<usize>,
    data_len: u64,
}

impl Header {
    /// Bytes a header with `ndims` dimensions takes.
    fn len(ndims: u8) -> usize {
        4 + 4 * usize::from(ndims)
    }

    /// Checks the 4-byte magic and returns the number of dimensions.
    fn ndims(magic: &[u8; 4]) -> Result<u8, FormatError> {
        if magic[0] != 0 || magic[1] != 0 {
            return Err(FormatError::BadMagic(magic[0], magic[1]));
        }
        match IdxDtype::from_code(magic[2]) {
            None => Err(FormatError::UnknownDtype(magic[2])),
            Some(IdxDtype::U8) => Ok(magic[3]),
            Some(other) => Err(FormatError::UnsupportedDtype(other)),
        }
    }

    /// Parses the dimension words (after the magic).
    fn parse_dims(words: &[u8]) -> Result<Self, FormatError> {
        let raw: Vec<u64> = words
            .chunks_exact(4)
            .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
            .collect();
        let data_len = raw
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| usize::try_from(n).is_ok())
            .ok_or_else(|| FormatError::DimsOverflow(raw.clone()))?;
        // Every dim is below 2^32 and the product fits usize, so each dim fits usize.
        let dims = raw.iter().map(|&d| d as usize).collect();
        Ok(Self { dims, data_len })
    }
}

impl IdxArray {
    /// An array with the given dimensions and row-major data.
    pub fn new(dims: Vec<usize>, data: Vec<u8>) -> Result<Self, FormatError> {
        Self::header(&dims)?;
        let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected != Some(data.len()) {
            return Err(FormatError::LenMismatch {
                dims,
                len: data.len(),
            });
        }
        Ok(Self { dims, data })
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The data, row-major.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The dimensions and the data.
    pub fn into_parts(self) -> (Vec<usize>, Vec<u8>) {
        (self.dims, self.data)
    }

    /// Parses IDX bytes, raw or gzip-compressed (detected by the gzip magic).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.starts_with(&GZIP_MAGIC) {
            Self::from_gzip(bytes)
        } else {
            Self::from_raw(bytes)
        }
    }

    fn from_raw(bytes: &[u8]) -> Result<Self, FormatError> {
        let too_short = |needed| FormatError::TooShort {
            needed,
            found: bytes.len(),
        };
        let magic: &[u8; 4] = bytes.first_chunk().ok_or_else(|| too_short(4))?;
        let header_len = Header::len(Header::ndims(magic)?);
        let words = bytes
            .get(4..header_len)
            .ok_or_else(|| too_short(header_len))?;
        let header = Header::parse_dims(words)?;
        let body = &bytes[header_len..];
        let found = body.len() as u64;
        if found < header.data_len {
            return Err(FormatError::Truncated {
                expected: header.data_len,
                found,
            });
        }
        if found > header.data_len {
            return Err(FormatError::TrailingBytes {
                expected: header.data_len,
            });
        }
        Ok(Self {
            dims: header.dims,
            data: body.to_vec(),
        })
    }

    fn from_gzip(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut decoder = GzDecoder::new(bytes);
        let mut magic = [0u8; 4];
        let got = read_full(&mut decoder, &mut magic)?;
        if got < magic.len() {
            return Err(FormatError::TooShort {
                needed: 4,
                found: got,
            });
        }
        let ndims = Header::ndims(&magic)?;
        let mut words = vec![0u8; 4 * usize::from(ndims)];
        let got = read_full(&mut decoder, &mut words)?;
        if got < words.len() {
            return Err(FormatError::TooShort {
                needed: Header::len(ndims),
                found: 4 + got,
            });
        }
        let header = Header::parse_dims(&words)?;
        let bound = (bytes.len() as u64).saturating_mul(MAX_DEFLATE_RATIO) + GZIP_SLACK;
        if header.data_len > bound {
            return Err(FormatError::ImplausibleSize {
                expected: header.data_len,
                compressed: bytes.len(),
            });
        }
        // Reserve at most a bounded amount; the rest grows only as real bytes arrive.
        let mut data = Vec::with_capacity(header.data_len.min(MAX_RESERVE) as usize);
        (&mut decoder)
            .take(header.data_len)
            .read_to_end(&mut data)
            .map_err(FormatError::Gzip)?;
        let found = data.len() as u64;
        if found < header.data_len {
            return Err(FormatError::Truncated {
                expected: header.data_len,
                found,
            });
        }
        let mut extra = [0u8; 1];
        if read_full(&mut decoder, &mut extra)? > 0 {
            return Err(FormatError::TrailingBytes {
                expected: header.data_len,
            });
        }
        Ok(Self {
            dims: header.dims,
            data,
        })
    }

    /// Reads and parses an IDX file, raw or gzip; errors name the file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|source| Error::Format {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the array as IDX to `w`.
    pub fn write_to(&self, w: impl Write, compression: Compression) -> io::Result<()> {
        match compression {
            Compression::None => self.write_raw(w),
            Compression::Gzip => {
                let mut gz = GzEncoder::new(w, flate2::Compression::default());
                self.write_raw(&mut gz)?;
                gz.finish()?.flush()
            }
        }
    }

    fn write_raw(&self, mut w: impl Write) -> io::Result<()> {
        // `new` checked the dims, so the header is representable.
        w.write_all(&Self::header(&self.dims).map_err(io::Error::other)?)?;
        w.write_all(&self.data)
    }

    /// The raw IDX header of a u8 array with dimensions `dims`: write it, then the
    /// row-major data, to stream an array too large to hold. An error if there are over 255 dims or one is 2^32 or more.
    pub fn header(dims: &[usize]) -> Result<Vec<u8>, FormatError> {
        if dims.len() > usize::from(u8::MAX) || dims.iter().any(|&d| u32::try_from(d).is_err()) {
            return Err(FormatError::DimsUnrepresentable(dims.to_vec()));
        }
        let mut h = vec![0, 0, IdxDtype::U8.code(), dims.len() as u8];
        for &d in dims {
            h.extend_from_slice(&(d as u32).to_be_bytes());
        }
        Ok(h)
    }

    /// The array as IDX bytes.
    pub fn to_bytes(&self, compression: Compression) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::with_capacity(Header::len(self.dims.len() as u8) + self.data.len());
        self.write_to(&mut out, compression)
            .map_err(FormatError::Gzip)?;
        Ok(out)
    }

    /// Writes the array to `path` atomically: a temporary file beside it, fsynced, then renamed.
    pub fn write(&self, path: impl AsRef<Path>, compression: Compression) -> Result<(), Error> {
        let path = path.as_ref();
        let bytes = self.to_bytes(compression).map_err(|source| Error::Format {
            path: path.to_owned(),
            source,
        })?;
        write_atomic(path, &bytes)
    }
}

/// Writes `bytes` to `path` through a temporary sibling file, fsync, rename and a directory
/// fsync, so that `path` holds either its old contents or all of the new ones.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = atomic_write_file::AtomicWriteFile::open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.commit().map_err(io)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, FormatError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FormatError::Gzip(e)),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dims: &[u32]) -> Vec<u8> {
        let mut h = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            h.extend_from_slice(&d.to_be_bytes());
        }
        h
    }

    #[test]
    fn parses_a_small_raw_file() {
        let mut bytes = header(&[2, 2]);
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        let a = IdxArray::from_bytes(&bytes).unwrap();
        assert_eq!(a.dims(), &[2, 2]);
        assert_eq!(a.data(), &[1, 2, 3, 4]);
    }

    #[test]
    fn rejects_wrong_magic() {
        let err = IdxArray::from_bytes(&[1, 0, 8, 1, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, FormatError::BadMagic(1, 0)), "{err}");
    }

    #[test]
    fn rejects_unknown_and_unsupported_dtypes() {
        let err = IdxArray::from_bytes(&[0, 0, 0x42, 0]).unwrap_err();
        assert!(matches!(err, FormatError::UnknownDtype(0x42)), "{err}");
        let err = IdxArray::from_bytes(&[0, 0, 0x0D, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(
            matches!(err, FormatError::UnsupportedDtype(IdxDtype::F32)),
            "{err}"
        );
    }

    #[test]
    fn rejects_truncated_and_trailing_data() {
        let mut bytes = header(&[3]);
        bytes.extend_from_slice(&[1, 2]);
        let err = IdxArray::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Truncated {
                    expected: 3,
                    found: 2
                }
            ),
            "{err}"
        );
        bytes.extend_from_slice(&[3, 4]);
        let err = IdxArray::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(err, FormatError::TrailingBytes { expected: 3 }),
            "{err}"
        );
    }

    #[test]
    fn rejects_short_headers() {
        let err = IdxArray::from_bytes(&[0, 0]).unwrap_err();
        assert!(matches!(
            err,
            FormatError::TooShort {
                needed: 4,
                found: 2
            }
        ));
        let err = IdxArray::from_bytes(&[0, 0, 8, 3, 0, 0, 0, 1]).unwrap_err();
        assert!(matches!(
            err,
            FormatError::TooShort {
                needed: 16,
                found: 8
            }
        ));
    }

    #[test]
    fn overflowing_dims_fail_without_allocating() {
        let bytes = header(&[u32::MAX, u32::MAX, u32::MAX]);
        let err = IdxArray::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, FormatError::DimsOverflow(_)), "{err}");
    }

    #[test]
    fn a_huge_claim_in_a_tiny_file_fails_fast() {
        // 4 billion 28x28 images claimed by a 100-byte file, raw and gzipped.
        let mut bytes = header(&[4_000_000_000, 28, 28]);
        bytes.resize(100, 7);
        let err = IdxArray::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, FormatError::Truncated { .. }), "{err}");
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes).unwrap();
        let gz = gz.finish().unwrap();
        let err = IdxArray::from_bytes(&gz).unwrap_err();
        assert!(matches!(err, FormatError::ImplausibleSize { .. }), "{err}");
    }

    #[test]
    fn gzip_is_detected_by_magic_and_checked_for_truncation() {
        let a = IdxArray::new(vec![10, 10], (0..100).collect()).unwrap();
        let gz = a.to_bytes(Compression::Gzip).unwrap();
        assert_eq!(gz[..2], GZIP_MAGIC);
        assert_eq!(IdxArray::from_bytes(&gz).unwrap(), a);
        let cut = &gz[..gz.len() / 2];
        assert!(IdxArray::from_bytes(cut).is_err());
    }

    #[test]
    fn new_checks_length_and_representability() {
        assert!(IdxArray::new(vec![2, 3], vec![0; 5]).is_err());
        assert!(IdxArray::new(vec![1usize << 33], vec![]).is_err());
        assert!(IdxArray::new(vec![], vec![9]).is_ok());
        assert!(IdxArray::new(vec![0, 5], vec![]).is_ok());
    }

    #[test]
    fn atomic_write_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a-idx1-ubyte.gz");
        let a = IdxArray::new(vec![3], vec![1, 2, 3]).unwrap();
        a.write(&path, Compression::Gzip).unwrap();
        assert_eq!(IdxArray::read(&path).unwrap(), a);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn read_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken-idx3-ubyte");
        fs::write(&path, [0, 0, 8, 1, 0, 0, 0, 9, 1]).unwrap();
        let msg = IdxArray::read(&path).unwrap_err().to_string();
        assert!(
            msg.contains("broken-idx3-ubyte") && msg.contains("truncated"),
            "{msg}"
        );
        let msg = IdxArray::read(dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("nope"), "{msg}");
    }
}
