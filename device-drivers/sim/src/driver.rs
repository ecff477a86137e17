//! The simulation clock and the order readings are delivered in.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eddy_driver::{Driver, DriverError, Poll, Record};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{FaultKind, SimConfig};
use crate::devices::{Device, Fault, Names, Outage};

/// Simulated devices read on a simulated clock. See the crate docs.
pub struct SimDriver {
    devices: Vec<Device>,
    names: Names,
    rng: ChaCha8Rng,
    /// Event time of tick 0.
    start: i64,
    interval: i64,
    /// Event time at which the source ends, if it does.
    end: Option<i64>,
    /// Simulated ms per wall-clock ms; 0 for unpaced.
    speed: f64,
    /// The wall-clock instant the simulated clock was at `paced_from`.
    wall_start: Instant,
    /// Event time at `wall_start`: the start, or where a seek went.
    paced_from: i64,
    /// Whether the start time was set, so that a run can go back to a
    /// position of an earlier one (the wall clock's start cannot).
    replayable: bool,
    /// What makes this simulation's readings what they are (start, interval,
    /// seed, devices in order), which a position must match.
    fingerprint: u64,
    tick: i64,
    /// Next device to read within the current tick.
    next_device: usize,
    /// Readings held back: (delivery time, sequence) → record.
    held: BinaryHeap<Reverse<Held>>,
    held_seq: u64,
    disorder_probability: f64,
    max_delay: i64,
    /// Event time after which keys change, if they do.
    key_churn: Option<i64>,
}

struct Held {
    delivery: i64,
    seq: u64,
    record: Record,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.delivery, self.seq) == (other.delivery, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.delivery, self.seq).cmp(&(other.delivery, other.seq))
    }
}

/// The largest time setting taken, in ms (2^53, about 285,000 years, and
/// exact as a float): sums of a few of them stay far inside an `i64`.
pub(crate) const MAX_TIME_MS: u64 = 1 << 53;

/// The most devices one simulation builds.
pub(crate) const MAX_DEVICES: u64 = 1_000_000;

/// Checks that every time setting is at most [`MAX_TIME_MS`] (the start
/// time that far either side of 1970) and that the simulation builds at
/// most [`MAX_DEVICES`] devices.
fn check_ranges(config: &SimConfig) -> Result<(), DriverError> {
    let mut times: Vec<(String, u64)> = vec![
        ("interval_ms".into(), config.interval_ms),
        ("duration_ms".into(), config.duration_ms.unwrap_or(0)),
        ("key_churn_ms".into(), config.key_churn_ms.unwrap_or(0)),
        ("disorder.max_delay_ms".into(), config.disorder.max_delay_ms),
        (
            "start_time_ms".into(),
            config.start_time_ms.map_or(0, i64::unsigned_abs),
        ),
    ];
    for (i, fault) in config.faults.iter().enumerate() {
        times.push((format!("faults[{i}].start_after_ms"), fault.start_after_ms));
        times.push((format!("faults[{i}].duration_ms"), fault.duration_ms));
    }
    if let Some((name, value)) = times.iter().find(|(_, v)| *v > MAX_TIME_MS) {
        return Err(DriverError::Config(format!(
            "{name} is {value}; it can be at most {MAX_TIME_MS} ms (about 285,000 years)"
        )));
    }
    let cells: u64 = config
        .ups
        .iter()
        .map(|u| u64::from(u.strings) * u64::from(u.cells_per_string))
        .sum();
    let devices = cells + config.rooms.len() as u64;
    if devices > MAX_DEVICES {
        return Err(DriverError::Config(format!(
            "the simulation would have {devices} devices; it can have at most {MAX_DEVICES}"
        )));
    }
    Ok(())
}

impl SimDriver {
    /// Builds the devices the config describes. Fails when a fault names a
    /// device that does not exist, or a number is out of range.
    pub fn new(config: &SimConfig) -> Result<Self, DriverError> {
        if config.interval_ms == 0 {
            return Err(DriverError::Config("interval_ms must be at least 1".into()));
        }
        check_ranges(config)?;
        if !(config.speed >= 0.0 && config.speed.is_finite()) {
            return Err(DriverError::Config(
                "speed must be 0 (unpaced) or a positive number".into(),
            ));
        }
        if !(0.0..=1.0).contains(&config.disorder.probability) {
            return Err(DriverError::Config(
                "disorder.probability must be between 0 and 1".into(),
            ));
        }
        let start = config.start_time_ms.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        });
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut devices: Vec<Device> = config
            .ups
            .iter()
            .flat_map(|u| Device::cells(u, &mut rng))
            .collect();
        devices.extend(config.rooms.iter().map(Device::room));
        if devices.is_empty() {
            return Err(DriverError::Config(
                "no devices: add at least one [[...ups]] or [[...rooms]]".into(),
            ));
        }
        for fault in &config.faults {
            let device = devices
                .iter_mut()
                .find(|d| *d.key == *fault.device)
                .ok_or_else(|| {
                    DriverError::Config(format!(
                        "fault names device `{}`, which the simulation does not have",
                        fault.device
                    ))
                })?;
            match fault.kind {
                FaultKind::CellOverheat => device.set_fault(Fault::new(fault, start)),
                FaultKind::Outage => device.add_outage(Outage::new(fault, start)),
            }
        }
        let fingerprint = fingerprint(start, config, &devices);
        Ok(SimDriver {
            devices,
            names: Names::new(),
            rng,
            start,
            interval: config.interval_ms as i64,
            end: config.duration_ms.map(|d| start + d as i64),
            speed: config.speed,
            wall_start: Instant::now(),
            paced_from: start,
            replayable: config.start_time_ms.is_some(),
            fingerprint,
            tick: 0,
            next_device: 0,
            held: BinaryHeap::new(),
            held_seq: 0,
            disorder_probability: config.disorder.probability,
            max_delay: config.disorder.max_delay_ms as i64,
            key_churn: config.key_churn_ms.filter(|c| *c > 0).map(|c| c as i64),
        })
    }

    /// How many devices are simulated (each is one key).
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// The latest event time the simulated clock has reached.
    fn horizon(&self) -> i64 {
        if self.speed == 0.0 {
            return i64::MAX;
        }
        let elapsed = self.wall_start.elapsed().as_secs_f64() * 1000.0;
        self.paced_from
            .saturating_add((elapsed * self.speed) as i64)
    }

    /// The wall-clock instant the simulated clock reaches `time`.
    fn wall_time_of(&self, time: i64) -> Instant {
        let ms = time.saturating_sub(self.paced_from) as f64 / self.speed;
        self.wall_start + Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }

    /// Holds a reading back until the simulated clock reaches `delivery`.
    fn hold(&mut self, delivery: i64, record: Record) {
        self.held_seq = self.held_seq.wrapping_add(1);
        self.held.push(Reverse(Held {
            delivery,
            seq: self.held_seq,
            record,
        }));
    }

    fn release_held(&mut self, until: i64) -> Option<Record> {
        let Reverse(top) = self.held.peek()?;
        (top.delivery <= until).then(|| self.held.pop().map(|Reverse(h)| h.record))?
    }
}

/// Where a replayable simulation is: enough to go on from there as if it
/// had never stopped (the devices themselves keep no state).
#[derive(Serialize, Deserialize)]
struct Position {
    /// The simulation it belongs to: its start, its device count, and its
    /// fingerprint (see [`fingerprint`]).
    start: i64,
    devices: u64,
    fingerprint: u64,
    tick: i64,
    next_device: u64,
    /// The generator's place in its stream.
    rng_word: u128,
    held_seq: u64,
    /// Readings held back: delivery time, sequence, record.
    held: Vec<(i64, u64, Record)>,
}

/// FNV-1a over what makes a simulation's readings what they are: its start,
/// interval, seed and fault settings' count, and its devices' keys in order.
/// Stable across builds, unlike the standard library's hasher.
fn fingerprint(start: i64, config: &SimConfig, devices: &[Device]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    add(&start.to_le_bytes());
    add(&config.interval_ms.to_le_bytes());
    add(&config.seed.to_le_bytes());
    add(&(config.faults.len() as u64).to_le_bytes());
    for device in devices {
        add(device.key.as_bytes());
        add(&[0]);
    }
    hash
}

impl Driver for SimDriver {
    /// With `start_time_ms` set, the simulation's place (its clock, its
    /// generator, the readings it holds back): a restarted pipeline goes on
    /// from its last checkpoint with the very readings an uninterrupted run
    /// would have had. Without it, `None`: the clock starts at the wall
    /// clock, and a restarted simulation starts afresh, as a live device.
    fn position(&self) -> Option<Vec<u8>> {
        if !self.replayable {
            return None;
        }
        let position = Position {
            start: self.start,
            devices: self.devices.len() as u64,
            fingerprint: self.fingerprint,
            tick: self.tick,
            next_device: self.next_device as u64,
            rng_word: self.rng.get_word_pos(),
            held_seq: self.held_seq,
            held: self
                .held
                .iter()
                .map(|Reverse(h)| (h.delivery, h.seq, h.record.clone()))
                .collect(),
        };
        postcard::to_allocvec(&position).ok()
    }

    /// Goes back to a [`position`](Driver::position); the simulated clock
    /// is paced from there.
    fn seek(&mut self, bytes: &[u8]) -> Result<(), DriverError> {
        let position: Position = postcard::from_bytes(bytes)
            .map_err(|e| DriverError::Config(format!("not a position of the simulation: {e}")))?;
        if !self.replayable
            || position.start != self.start
            || position.devices != self.devices.len() as u64
            || position.fingerprint != self.fingerprint
            || position.next_device >= position.devices
            || position.tick < 0
        {
            return Err(DriverError::Config(format!(
                "the checkpoint's position is of another simulation (start {} ms, {} devices, \
                 tick {}); this one starts at {} ms with {} devices, or its interval, seed or \
                 devices differ: go back to that configuration, or start the pipeline afresh \
                 with `eddy state clear PIPELINE`",
                position.start,
                position.devices,
                position.tick,
                self.start,
                self.devices.len()
            )));
        }
        self.tick = position.tick;
        self.next_device = position.next_device as usize;
        self.rng.set_word_pos(position.rng_word);
        self.held_seq = position.held_seq;
        self.held = position
            .held
            .into_iter()
            .map(|(delivery, seq, record)| {
                Reverse(Held {
                    delivery,
                    seq,
                    record,
                })
            })
            .collect();
        self.paced_from = self
            .tick
            .saturating_mul(self.interval)
            .saturating_add(self.start);
        self.wall_start = Instant::now();
        Ok(())
    }

    fn poll(&mut self, out: &mut Vec<Record>, max: usize) -> Result<Poll, DriverError> {
        let horizon = self.horizon();
        let mut taken = 0;
        while taken < max {
            // Past the last time an `i64` holds, the simulation ends too.
            let time = self
                .tick
                .checked_mul(self.interval)
                .and_then(|t| t.checked_add(self.start))
                .filter(|time| self.end.is_none_or(|end| *time < end));
            let Some(time) = time else {
                // The end: deliver whatever is still held back, then stop.
                match self.release_held(i64::MAX) {
                    Some(record) => {
                        out.push(record);
                        taken += 1;
                        continue;
                    }
                    None => return Ok(Poll::Ended),
                }
            };
            if time > horizon {
                return Ok(Poll::WaitUntil(self.wall_time_of(time)));
            }
            if self.next_device == 0
                && let Some(record) = self.release_held(time)
            {
                out.push(record);
                taken += 1;
                continue;
            }
            let device = &self.devices[self.next_device];
            let mut record = device.read(time, &self.names, &mut self.rng);
            if let Some(churn) = self.key_churn {
                let generation = (time - self.start) / churn;
                if generation > 0 {
                    record.key = format!("{}~{generation}", record.key).into();
                }
            }
            let outage = device.outage(time);
            self.next_device += 1;
            if self.next_device == self.devices.len() {
                self.next_device = 0;
                self.tick += 1;
            }
            if let Some(outage) = outage {
                if outage.buffered {
                    self.hold(outage.end, record);
                }
                continue;
            }
            if self.disorder_probability > 0.0
                && self.max_delay > 0
                && self.rng.random_bool(self.disorder_probability)
            {
                let delay = self.rng.random_range(1..=self.max_delay);
                self.hold(time.saturating_add(delay), record);
                continue;
            }
            out.push(record);
            taken += 1;
        }
        Ok(Poll::Ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> SimConfig {
        toml::from_str(&format!(
            r#"
            seed = 7
            start_time_ms = 1_000_000
            speed = 0
            duration_ms = 60_000
            {extra}
            [[ups]]
            name = "ups-1"
            strings = 1
            cells_per_string = 4
            [[rooms]]
            name = "room-a"
            "#
        ))
        .unwrap()
    }

    fn drain(config: &SimConfig, batch: usize) -> Vec<Record> {
        let mut driver = SimDriver::new(config).unwrap();
        let mut out = Vec::new();
        while driver.poll(&mut out, batch).unwrap() != Poll::Ended {}
        out
    }

    #[test]
    fn times_beyond_the_range_and_too_many_devices_are_refused_by_name() {
        let error = |extra: &str| match SimDriver::new(&config(extra)) {
            Err(DriverError::Config(message)) => message,
            other => panic!("{extra}: {:?}", other.map(|_| ())),
        };
        // `config` sets start_time_ms and duration_ms; these replace them.
        let mut c = config("");
        c.start_time_ms = Some(i64::MAX);
        assert!(
            matches!(SimDriver::new(&c), Err(DriverError::Config(m)) if m.contains("start_time_ms is 9223372036854775807"))
        );
        c.start_time_ms = Some(0);
        c.duration_ms = Some(u64::MAX);
        assert!(
            matches!(SimDriver::new(&c), Err(DriverError::Config(m)) if m.contains("duration_ms is 18446744073709551615"))
        );
        assert!(
            error("interval_ms = 9007199254740993").contains("interval_ms is 9007199254740993")
        );
        c.duration_ms = Some(60_000);
        c.ups[0].strings = 2000;
        c.ups[0].cells_per_string = 1000;
        assert!(
            matches!(SimDriver::new(&c), Err(DriverError::Config(m)) if m.contains("would have 2000001 devices"))
        );
    }

    #[test]
    fn a_clock_that_would_pass_the_last_time_an_i64_holds_ends_there() {
        let mut c = config("");
        c.start_time_ms = Some(MAX_TIME_MS as i64);
        c.duration_ms = None;
        c.interval_ms = MAX_TIME_MS;
        // Ticks at 2^53 × 1..=1023 fit; the 1024th would not.
        let records = drain(&c, 1000);
        assert_eq!(records.len(), 1023 * 5);
        assert_eq!(records.last().unwrap().time, 1023 * MAX_TIME_MS as i64);
    }

    #[test]
    fn the_same_seed_gives_the_same_records_whatever_the_batch_size() {
        let c = config("");
        let a = drain(&c, 1);
        let b = drain(&c, 1000);
        assert_eq!(a.len(), 5 * 60);
        assert_eq!(a, b);
        let other = drain(&SimConfig { seed: 8, ..c }, 1000);
        assert_ne!(a, other);
    }

    #[test]
    fn churning_keys_change_every_period_and_never_come_back() {
        let records = drain(&config("key_churn_ms = 20_000"), 100);
        let keys_at = |from: i64, to: i64| -> std::collections::BTreeSet<String> {
            records
                .iter()
                .filter(|r| (from..to).contains(&(r.time - 1_000_000)))
                .map(|r| r.key.to_string())
                .collect()
        };
        let (first, second, third) = (
            keys_at(0, 20_000),
            keys_at(20_000, 40_000),
            keys_at(40_000, 60_000),
        );
        assert_eq!(first.len(), 5);
        assert!(first.contains("room-a") && second.contains("room-a~1"));
        assert!(third.contains("room-a~2"));
        assert!(first.is_disjoint(&second) && second.is_disjoint(&third));
    }

    #[test]
    fn disorder_delivers_every_record_some_out_of_order() {
        let c = config("disorder = { probability = 0.2, max_delay_ms = 5000 }");
        let records = drain(&c, 64);
        assert_eq!(records.len(), 5 * 60);
        let out_of_order = records.windows(2).filter(|w| w[1].time < w[0].time).count();
        assert!(out_of_order > 10, "only {out_of_order} out of order");
    }

    #[test]
    fn an_overheating_cell_heats_up_and_others_do_not() {
        let c = config(
            r#"[[faults]]
            kind = "cell_overheat"
            device = "ups-1/string-1/cell-03"
            start_after_ms = 10_000
            rise_c_per_min = 20.0"#,
        );
        let records = drain(&c, 1000);
        let last_temp = |key: &str| {
            records
                .iter()
                .rev()
                .find(|r| &*r.key == key)
                .and_then(|r| r.get("temperature").and_then(|v| v.as_f64()))
                .unwrap()
        };
        assert!(last_temp("ups-1/string-1/cell-03") > 35.0);
        assert!(last_temp("ups-1/string-1/cell-02") < 27.0);
    }

    #[test]
    fn an_outage_silences_a_device_and_a_buffered_one_sends_its_readings_late() {
        let outage = |buffered: bool| {
            config(&format!(
                r#"[[faults]]
                kind = "outage"
                device = "room-a"
                start_after_ms = 10_000
                duration_ms = 20_000
                buffered = {buffered}"#
            ))
        };
        let lost = drain(&outage(false), 64);
        assert_eq!(lost.len(), 5 * 60 - 20);
        let kept = drain(&outage(true), 64);
        assert_eq!(kept.len(), 5 * 60);
        // The twenty readings of 10 s..30 s arrive together when the outage ends.
        let first_back = kept
            .iter()
            .position(|r| &*r.key == "room-a" && r.time == 1_010_000)
            .unwrap();
        let before = &kept[first_back - 1];
        assert!(
            before.time >= 1_029_000,
            "sent at the end of the outage, after {before:?}"
        );
    }

    #[test]
    fn a_simulation_sought_back_to_a_position_goes_on_as_if_it_had_never_stopped() {
        // Disorder and a buffered outage, so that readings are held back
        // across the position.
        let c = config(
            r#"disorder = { probability = 0.3, max_delay_ms = 4000 }
            [[faults]]
            kind = "outage"
            device = "room-a"
            start_after_ms = 10_000
            duration_ms = 20_000
            buffered = true"#,
        );
        let whole = drain(&c, 7);
        for cut in [0, 1, 5, 71, 150, whole.len() - 3, whole.len()] {
            let mut first = SimDriver::new(&c).unwrap();
            let mut out = Vec::new();
            while out.len() < cut {
                let left = cut - out.len();
                first.poll(&mut out, left).unwrap();
            }
            let position = first.position().unwrap();
            // A new run of the same configuration, sought back there.
            let mut second = SimDriver::new(&c).unwrap();
            second.seek(&position).unwrap();
            while second.poll(&mut out, 13).unwrap() != Poll::Ended {}
            assert_eq!(out, whole, "cut after {cut} records");
        }
        // Another simulation's position is refused by what differs.
        let position = SimDriver::new(&c).unwrap().position().unwrap();
        let mut other = c.clone();
        other.start_time_ms = Some(5);
        let error = SimDriver::new(&other).unwrap().seek(&position).unwrap_err();
        assert!(error.to_string().contains("start 1000000 ms"), "{error}");
        assert!(error.to_string().contains("eddy state clear"), "{error}");
        for changed in [
            SimConfig {
                seed: 8,
                ..c.clone()
            },
            SimConfig {
                interval_ms: 500,
                ..c.clone()
            },
        ] {
            assert!(SimDriver::new(&changed).unwrap().seek(&position).is_err());
        }
        let mut renamed = c.clone();
        renamed.ups[0].name = "ups-2".into();
        assert!(SimDriver::new(&renamed).unwrap().seek(&position).is_err());
        assert!(SimDriver::new(&c).unwrap().seek(b"junk").is_err());
        // On the wall clock, it is a live source: no position.
        other.start_time_ms = None;
        assert!(SimDriver::new(&other).unwrap().position().is_none());
    }

    #[test]
    fn a_fault_on_a_missing_device_is_refused() {
        let c = config(
            r#"[[faults]]
            kind = "cell_overheat"
            device = "ups-9/string-1/cell-01""#,
        );
        let err = SimDriver::new(&c).err().unwrap().to_string();
        assert!(err.contains("ups-9/string-1/cell-01"), "{err}");
    }
}
