//! The requests that read a device's points: points of one table whose
//! addresses are contiguous (or, when allowed, a few registers apart) share
//! one request, up to a maximum size.

use crate::{Point, Table};

/// One read request, and the points its response serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The table it reads.
    pub table: Table,
    /// Its first address.
    pub address: u16,
    /// How many registers or bits it reads.
    pub count: u16,
    /// The points it serves, as indexes into the points planned.
    pub points: Vec<usize>,
}

/// Plans the requests that read `points`: at most `max_registers`
/// registers (or 16 times as many bits) a request, reading across a gap of
/// at most `max_gap` unused registers. Requests come in table, then
/// address order.
pub fn plan(points: &[Point], max_registers: u16, max_gap: u16) -> Vec<Request> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].table, points[i].address));
    let mut requests: Vec<Request> = Vec::new();
    for i in order {
        let p = &points[i];
        let (start, end) = (
            u32::from(p.address),
            u32::from(p.address) + u32::from(p.size()),
        );
        let most = if p.table.is_bits() {
            u32::from(max_registers) * 16
        } else {
            u32::from(max_registers)
        }
        .max(u32::from(p.size()));
        if let Some(last) = requests.last_mut() {
            let last_start = u32::from(last.address);
            let last_end = last_start + u32::from(last.count);
            let joins = last.table == p.table
                && start <= last_end + u32::from(max_gap)
                && end.max(last_end) - last_start <= most;
            if joins {
                last.count = (end.max(last_end) - last_start) as u16;
                last.points.push(i);
                continue;
            }
        }
        requests.push(Request {
            table: p.table,
            address: p.address,
            count: p.size(),
            points: vec![i],
        });
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RawType, ReadWrite};

    fn point(name: &str, table: Table, address: u16, raw_type: RawType) -> Point {
        Point {
            name: name.into(),
            table,
            address,
            raw_type,
            word_swap: false,
            byte_swap: false,
            bit: None,
            string_registers: None,
            scale: 1.0,
            offset: 0.0,
            units: None,
            read_write: ReadWrite::R,
        }
    }

    #[test]
    fn contiguous_points_share_a_request_and_gaps_and_tables_split() {
        use RawType::*;
        use Table::*;
        let points = [
            point("v", HoldingRegisters, 0, Float32), // 0..2
            point("i", HoldingRegisters, 2, Float32), // 2..4
            point("f", HoldingRegisters, 4, Uint16),  // 4..5
            point("e", HoldingRegisters, 10, Uint64), // 10..14, a gap of 5
            point("t", InputRegisters, 0, Int16),
            point("run", Coils, 3, Bool),
            point("on", Coils, 4, Bool),
        ];
        let requests = plan(&points, 125, 0);
        let summary: Vec<(Table, u16, u16, usize)> = requests
            .iter()
            .map(|r| (r.table, r.address, r.count, r.points.len()))
            .collect();
        assert_eq!(
            summary,
            [
                (Coils, 3, 2, 2),
                (InputRegisters, 0, 1, 1),
                (HoldingRegisters, 0, 5, 3),
                (HoldingRegisters, 10, 4, 1),
            ]
        );
        // Reading across the gap, when the device allows it.
        let requests = plan(&points, 125, 5);
        assert_eq!(requests.len(), 3);
        assert_eq!((requests[2].address, requests[2].count), (0, 14));
        // A device that takes at most 4 registers a request.
        let requests = plan(&points, 4, 0);
        let holding: Vec<(u16, u16)> = requests
            .iter()
            .filter(|r| r.table == HoldingRegisters)
            .map(|r| (r.address, r.count))
            .collect();
        assert_eq!(holding, [(0, 4), (4, 1), (10, 4)]);
    }
}
