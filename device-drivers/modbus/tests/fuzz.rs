//! Fuzzing the Modbus core: any point decodes any registers a device sends
//! to a value or an error, never a panic; any set of points is planned
//! into requests that read each point whole, once, within the size a
//! device takes.
//!
//! The default test run tries a few hundred inputs per property;
//! `cargo xtask fuzz` runs them (every test named `fuzz_…`) for as long as
//! it is given.

use eddy_driver_modbus::{Point, PointValue, RawType, ReadWrite, Table, plan};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn point() -> impl Strategy<Value = Point> {
    let table = prop_oneof![
        Just(Table::Coils),
        Just(Table::DiscreteInputs),
        Just(Table::InputRegisters),
        Just(Table::HoldingRegisters),
    ];
    let raw_type = proptest::sample::select(vec![
        RawType::Bool,
        RawType::Int16,
        RawType::Uint16,
        RawType::Int32,
        RawType::Uint32,
        RawType::Int64,
        RawType::Uint64,
        RawType::Float32,
        RawType::Float64,
        RawType::String,
    ]);
    (
        table,
        any::<u16>(),
        raw_type,
        any::<(bool, bool)>(),
        proptest::option::of(0u8..20),
        proptest::option::of(0u16..8),
        prop_oneof![Just(1.0), any::<f64>()],
    )
        .prop_map(
            |(table, address, raw_type, (word_swap, byte_swap), bit, strings, scale)| Point {
                name: format!("p{address}"),
                table,
                address,
                raw_type,
                word_swap,
                byte_swap,
                bit,
                string_registers: strings,
                scale,
                offset: 0.0,
                units: None,
                read_write: ReadWrite::R,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fuzz_any_registers_decode_or_are_refused(
        p in point(),
        registers in proptest::collection::vec(any::<u16>(), 0..10),
        bits in proptest::collection::vec(any::<bool>(), 0..3),
    ) {
        let _ = p.decode_registers(&registers);
        let _ = p.decode_bits(&bits);
    }

    #[test]
    fn fuzz_a_plan_reads_every_point_whole_and_once(
        points in proptest::collection::vec(point(), 0..40),
        max_registers in 1u16..130,
        max_gap in 0u16..10,
    ) {
        let requests = plan(&points, max_registers, max_gap);
        let mut served = vec![0; points.len()];
        for r in &requests {
            let limit = if r.table.is_bits() { u32::from(max_registers) * 16 } else { u32::from(max_registers) };
            let (start, end) = (u32::from(r.address), u32::from(r.address) + u32::from(r.count));
            // A request is over the limit only to hold a point bigger than it.
            let biggest = r.points.iter().map(|&i| u32::from(points[i].size())).max().unwrap_or(0);
            prop_assert!(end - start <= limit.max(biggest), "{:?}", r);
            for &i in &r.points {
                let p = &points[i];
                served[i] += 1;
                prop_assert_eq!(p.table, r.table);
                let (p_start, p_end) = (u32::from(p.address), u32::from(p.address) + u32::from(p.size()));
                prop_assert!(start <= p_start && p_end <= end, "point {:?} outside {:?}", (p_start, p_end), r);
            }
        }
        prop_assert!(served.iter().all(|n| *n == 1), "{:?}", served);
    }

    #[test]
    fn fuzz_what_is_read_writes_back_as_the_same_registers(
        p in point(),
        registers in proptest::collection::vec(any::<u16>(), 4..5),
    ) {
        // Unscaled numbers in a register table: a value read from
        // registers is written as those registers again.
        let mut p = p;
        p.scale = 1.0;
        p.table = Table::HoldingRegisters;
        p.bit = None;
        prop_assume!(!matches!(p.raw_type, RawType::Bool | RawType::String));
        let n = usize::from(p.size());
        let value = p.decode_registers(&registers).unwrap();
        prop_assume!(!matches!(value, PointValue::Float(f) if f.is_nan()));
        let written = p.encode_registers(&value).unwrap();
        prop_assert_eq!(&written[..], &registers[..n]);
    }
}
