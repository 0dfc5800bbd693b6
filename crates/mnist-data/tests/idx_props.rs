//! Property tests of the IDX reader and writer.

use mnist_data::{Compression, IdxArray};
use proptest::prelude::*;

fn array() -> impl Strategy<Value = IdxArray> {
    prop::collection::vec(0usize..6, 0..5).prop_flat_map(|dims| {
        let n = dims.iter().product::<usize>();
        prop::collection::vec(any::<u8>(), n).prop_map(move |data| {
            IdxArray::new(dims.clone(), data).expect("consistent by construction")
        })
    })
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![Just(Compression::None), Just(Compression::Gzip)]
}

proptest! {
    #[test]
    fn write_then_parse_is_identity(a in array(), c in compression()) {
        let bytes = a.to_bytes(c).unwrap();
        prop_assert_eq!(IdxArray::from_bytes(&bytes).unwrap(), a);
    }

    #[test]
    fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = IdxArray::from_bytes(&bytes);
    }

    #[test]
    fn any_header_like_bytes_never_panic(
        dtype in prop_oneof![Just(0x08u8), any::<u8>()],
        ndims in 0u8..5,
        rest in prop::collection::vec(any::<u8>(), 0..64),
        gzip in any::<bool>(),
    ) {
        let mut bytes = vec![0, 0, dtype, ndims];
        bytes.extend(rest);
        if gzip {
            let a = IdxArray::new(vec![bytes.len()], bytes).unwrap();
            // Gzip the header-like bytes as a whole stream, by writing them as IDX data and
            // stripping the 8-byte header before compression.
            let raw = a.to_bytes(Compression::None).unwrap();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &raw[8..]).unwrap();
            let _ = IdxArray::from_bytes(&gz.finish().unwrap());
        } else {
            let _ = IdxArray::from_bytes(&bytes);
        }
    }

    #[test]
    fn any_corruption_of_a_valid_file_is_caught_or_harmless(
        a in array(),
        c in compression(),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let bytes = a.to_bytes(c).unwrap();
        // Truncation anywhere short of the whole file is always an error.
        let at = cut.index(bytes.len());
        prop_assert!(IdxArray::from_bytes(&bytes[..at]).is_err());
        // A flipped byte either fails to parse or parses into something well-formed.
        let mut flipped = bytes.clone();
        let i = flip.0.index(flipped.len());
        flipped[i] ^= flip.1 | 1;
        if let Ok(b) = IdxArray::from_bytes(&flipped) {
            prop_assert_eq!(b.dims().iter().product::<usize>(), b.data().len());
        }
    }
}
