//! Fuzzing the BLE decoders: whatever bytes come over the air, a decoder
//! gives readings or an error, never a panic, and every reading is a
//! finite number.
//!
//! The default test run tries a few hundred inputs per property;
//! `cargo xtask fuzz` runs them (every test named `fuzz_…`) for as long as
//! it is given.

use eddy_driver_ble::{Reading, bthome, ess, ruuvi};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn finite(readings: &[Reading]) -> bool {
    readings
        .iter()
        .all(|r| r.value.is_finite() && !r.name.is_empty())
}

/// Any bytes, or bytes that start as the format does.
fn bytes(first: u8, len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), len..=len).prop_map(move |mut b| {
            b[0] = first;
            b
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fuzz_bthome_takes_any_bytes(data in bytes(0x40, 24)) {
        if let Ok(a) = bthome::decode(&data) {
            prop_assert!(finite(&a.readings));
        }
    }

    #[test]
    fn fuzz_ruuvi_takes_any_bytes(data in bytes(ruuvi::FORMAT, 24)) {
        if let Ok(a) = ruuvi::decode(&data) {
            prop_assert!(finite(&a.readings));
            prop_assert!(a.readings.len() <= 9);
        }
    }

    #[test]
    fn fuzz_ess_takes_any_bytes(
        uuid in prop_oneof![Just(ess::TEMPERATURE), Just(ess::HUMIDITY), Just(ess::PRESSURE), any::<u16>()],
        data in proptest::collection::vec(any::<u8>(), 0..6),
    ) {
        if let Ok(Some(r)) = ess::decode(uuid, &data) {
            prop_assert!(finite(&[r]));
        }
    }

    #[test]
    fn fuzz_encrypted_bthome_takes_any_bytes(
        data in bytes(0x41, 20),
        mac in any::<[u8; 6]>(),
        key in any::<[u8; 16]>(),
    ) {
        // Random bytes almost never carry a tag that verifies: an error,
        // never a panic; and whatever does decode is finite.
        if let Ok(a) = bthome::decode_with_key(&data, mac, &key) {
            prop_assert!(finite(&a.readings));
        }
    }
}
