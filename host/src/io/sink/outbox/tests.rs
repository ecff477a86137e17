//! The outbox against a real sled store and real segment files in a
//! temporary directory.

use super::*;
use eddy_abi::Record;

fn out(output: &str, n: u64) -> OwnedOut {
    OwnedOut {
        output: output.into(),
        id: format!("p/{output}/k/r{n}/0"),
        record: Record::new("k", n as i64).with("v", n as f64),
    }
}

fn outbox(dir: &std::path::Path, config: OutboxConfig) -> Outbox {
    let store = StateStore::open(dir).unwrap();
    Outbox::open(&store, "p", "up", config, true).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Takes one batch and says it was delivered; gives its ids.
fn deliver(outbox: &Outbox, rt: &tokio::runtime::Runtime, max: usize) -> Vec<String> {
    rt.block_on(async {
        let batch = outbox.take(max).await.unwrap();
        outbox.done(batch.len(), Vec::new()).await;
        batch.iter().map(|o| o.id.clone()).collect()
    })
}

/// The bytes one result takes in an outbox.
fn size_of(result: &OwnedOut) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let o = outbox(dir.path(), OutboxConfig::default());
    o.push(std::iter::once(result.clone())).unwrap();
    o.counters().bytes
}

fn ids(output: &str, range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|n| out(output, n).id).collect()
}

#[test]
fn alerts_go_before_the_backlog_and_each_priority_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = OutboxConfig {
        priorities: vec!["alerts".into()],
        ..OutboxConfig::default()
    };
    let outbox = outbox(dir.path(), config);
    outbox.push((0..3).map(|n| out("stats", n))).unwrap();
    outbox.push((0..2).map(|n| out("alerts", n))).unwrap();
    outbox.push((3..5).map(|n| out("stats", n))).unwrap();
    assert_eq!(outbox.counters().entries, 7);
    let rt = runtime();
    let mut expected = ids("alerts", 0..2);
    expected.extend(ids("stats", 0..5));
    assert_eq!(deliver(&outbox, &rt, 100), expected);
    assert_eq!(outbox.counters().entries, 0);
    assert_eq!(outbox.counters().bytes, 0);
}

#[test]
fn a_full_outbox_drops_the_oldest_of_the_lowest_priority_or_the_newest_or_blocks() {
    // Room for one alert and three stats results.
    let room = size_of(&out("alerts", 0)) + 3 * size_of(&out("stats", 0));
    for (when_full, kept_stats, dropped) in [
        (WhenFull::DropOldest, ids("stats", 3..6), 3),
        (WhenFull::DropNewest, ids("stats", 0..3), 3),
        (WhenFull::Block, ids("stats", 0..6), 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = OutboxConfig {
            max_bytes: room,
            when_full,
            priorities: vec!["alerts".into()],
            ..OutboxConfig::default()
        };
        let o = outbox(dir.path(), config);
        o.push(std::iter::once(out("alerts", 0))).unwrap();
        o.push((0..6).map(|n| out("stats", n))).unwrap();
        assert_eq!(o.counters().dropped, dropped, "{when_full:?}");
        // Full, which holds the pipeline back only with `block`.
        assert_eq!(o.blocking(), when_full == WhenFull::Block);
        let rt = runtime();
        let mut expected = ids("alerts", 0..1);
        expected.extend(kept_stats);
        assert_eq!(deliver(&o, &rt, 100), expected, "{when_full:?}");
        assert!(!o.blocking());
    }
}

#[test]
fn a_restore_sends_nothing_twice_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    {
        let o = outbox(dir.path(), OutboxConfig::default());
        o.push((0..4).map(|n| out("stats", n))).unwrap();
        let position = o.commit().unwrap();
        assert_eq!(position, 4);
        // After the checkpoint: 4..8 added, 0..6 delivered, then a crash.
        o.push((4..8).map(|n| out("stats", n))).unwrap();
        assert_eq!(deliver(&o, &rt, 6), ids("stats", 0..6));
    }
    // Restarted: back to the checkpoint, and the replay produces 4..10.
    let o = outbox(dir.path(), OutboxConfig::default());
    o.rewind(4).unwrap();
    assert_eq!(o.counters().entries, 0, "6 and 7 were added after it");
    o.push((4..10).map(|n| out("stats", n))).unwrap();
    assert_eq!(o.counters().replayed, 2, "4 and 5 were delivered");
    assert_eq!(deliver(&o, &rt, 100), ids("stats", 6..10));
}

#[test]
fn a_batch_taken_before_a_restore_and_delivered_after_it_removes_no_new_result() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    {
        let o = outbox(dir.path(), OutboxConfig::default());
        o.push((0..2).map(|n| out("stats", n))).unwrap();
        assert_eq!(o.commit().unwrap(), 2);
        o.push((2..5).map(|n| out("stats", n))).unwrap();
        assert_eq!(deliver(&o, &rt, 1), ids("stats", 0..1));
    }
    // Restarted: the delivery task takes 1..5 before the restore; the
    // replay then adds other results than before (a window closes
    // later), 10..13, while that batch is out.
    let o = outbox(dir.path(), OutboxConfig::default());
    let taken = rt.block_on(o.take(100)).unwrap();
    assert_eq!(
        taken.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        ids("stats", 1..5)
    );
    o.rewind(2).unwrap();
    o.push((10..13).map(|n| out("stats", n))).unwrap();
    rt.block_on(o.done(taken.len(), Vec::new()));
    // Delivered after the restore: the replay adds 3 again, which goes
    // no second time; what the replay added goes out, none of it lost.
    o.push(std::iter::once(out("stats", 3))).unwrap();
    assert_eq!(deliver(&o, &rt, 100), ids("stats", 10..13));
    assert_eq!(o.counters().entries, 0);
}

#[test]
fn the_next_batch_is_taken_while_the_one_before_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let config = OutboxConfig {
        priorities: vec!["alerts".into()],
        ..OutboxConfig::default()
    };
    let o = outbox(dir.path(), config);
    o.push((0..5).map(|n| out("stats", n))).unwrap();
    let rt = runtime();
    let names = |b: &Arc<Vec<OwnedOut>>| b.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    assert!(
        o.try_take_next(2).is_none(),
        "nothing in flight: no read-ahead"
    );
    let first = rt.block_on(o.take(2)).unwrap();
    assert_eq!(names(&first), ids("stats", 0..2));
    // The next batch continues where the first ended.
    let second = o.try_take_next(2).unwrap();
    assert_eq!(names(&second), ids("stats", 2..4));
    assert!(o.try_take_next(2).is_none(), "two in flight at most");
    rt.block_on(o.done(first.len(), Vec::new()));
    assert_eq!(o.counters().entries, 3, "only the first batch is gone");
    // An alert comes while the second batch is out: no read-ahead past
    // it; it goes next, from the front.
    o.push(std::iter::once(out("alerts", 0))).unwrap();
    assert!(o.try_take_next(2).is_none(), "the alert goes first");
    rt.block_on(o.done(second.len(), Vec::new()));
    let mut rest = ids("alerts", 0..1);
    rest.extend(ids("stats", 4..5));
    assert_eq!(deliver(&o, &rt, 100), rest);
    assert_eq!(o.counters().entries, 0);
}

#[test]
fn results_older_than_max_age_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = OutboxConfig {
        max_age_ms: 50,
        ..OutboxConfig::default()
    };
    let o = outbox(dir.path(), config);
    o.push((0..3).map(|n| out("stats", n))).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(80));
    o.push(std::iter::once(out("stats", 3))).unwrap();
    assert_eq!(o.counters().expired, 3);
    assert_eq!(deliver(&o, &runtime(), 100), ids("stats", 3..4));
}

/// An outbox whose segments hold about `segment_bytes` each.
fn small_segments(dir: &std::path::Path, config: OutboxConfig, segment_bytes: u64) -> Outbox {
    let store = StateStore::open(dir).unwrap();
    let place = outbox_dir(&store, "p", "up");
    Outbox::open_in(&store, "p", "up", config, true, place, segment_bytes).unwrap()
}

/// The segment files of every rank (not of the delivered ids).
fn segment_files(dir: &std::path::Path) -> usize {
    let root = dir.join(OUTBOX_DIR_NAME).join("p").join("up");
    std::fs::read_dir(root)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<usize>()
                .is_ok()
        })
        .map(|rank| std::fs::read_dir(rank).unwrap().count())
        .sum()
}

/// The segment files of the delivered ids.
fn delivered_files(dir: &std::path::Path) -> usize {
    let root = dir
        .join(OUTBOX_DIR_NAME)
        .join("p")
        .join("up")
        .join("delivered");
    std::fs::read_dir(root).unwrap().count()
}

const OUTBOX_DIR_NAME: &str = crate::checkpoint::OUTBOX_DIR;

#[test]
fn a_backlog_across_many_segments_drains_in_order_through_a_restart_and_gives_its_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = OutboxConfig {
        priorities: vec!["alerts".into()],
        ..OutboxConfig::default()
    };
    let rt = runtime();
    let (entries, bytes);
    {
        let o = small_segments(dir.path(), config.clone(), 4096);
        o.push((0..1500).map(|n| out("stats", n))).unwrap();
        o.push((0..20).map(|n| out("alerts", n))).unwrap();
        assert_eq!(o.counters().entries, 1520);
        assert!(
            segment_files(dir.path()) > 20,
            "{}",
            segment_files(dir.path())
        );
        let mut first = ids("alerts", 0..20);
        first.extend(ids("stats", 0..280));
        assert_eq!(deliver(&o, &rt, 300), first);
        (entries, bytes) = (o.counters().entries, o.counters().bytes);
        assert_eq!(entries, 1220);
        // Not delivered but taken when the process stops: sent again.
        let taken = rt.block_on(o.take(100)).unwrap();
        assert_eq!(taken.len(), 100);
    }
    let o = small_segments(dir.path(), config, 4096);
    assert_eq!(o.counters().entries, entries);
    assert_eq!(o.counters().bytes, bytes);
    let mut rest = Vec::new();
    while o.counters().entries > 0 {
        rest.extend(deliver(&o, &rt, 333));
    }
    assert_eq!(rest, ids("stats", 280..1500));
    assert_eq!(o.counters().bytes, 0);
    // What is delivered leaves the disk: one segment a rank is left.
    assert_eq!(segment_files(dir.path()), 2);
}

#[test]
fn drop_oldest_drops_past_a_batch_in_flight() {
    let size = size_of(&out("stats", 0));
    let dir = tempfile::tempdir().unwrap();
    let config = OutboxConfig {
        max_bytes: 4 * size,
        when_full: WhenFull::DropOldest,
        ..OutboxConfig::default()
    };
    let o = outbox(dir.path(), config);
    let rt = runtime();
    o.push((0..4).map(|n| out("stats", n))).unwrap();
    // 0 and 1 go out (the broker is slow); 4 and 5 come meanwhile.
    let taken = rt.block_on(o.take(2)).unwrap();
    o.push((4..6).map(|n| out("stats", n))).unwrap();
    assert_eq!(o.counters().dropped, 2);
    assert_eq!(o.counters().entries, 4);
    rt.block_on(o.done(taken.len(), Vec::new()));
    // The oldest not on their way, 2 and 3, went.
    assert_eq!(deliver(&o, &rt, 100), ids("stats", 4..6));
    assert_eq!(o.counters().entries, 0);
    assert_eq!(o.counters().bytes, 0);
}

#[test]
fn results_an_older_version_kept_in_the_database_are_delivered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The older layout: a tree keyed by rank and sequence number,
        // valued by the time added and the result.
        let store = StateStore::open(dir.path()).unwrap();
        let tree = store.db().open_tree("p/outbox/up").unwrap();
        for (rank, output, n) in [(1u8, "stats", 0u64), (0, "alerts", 1), (1, "stats", 2)] {
            let mut k = vec![rank];
            k.extend_from_slice(&n.to_be_bytes());
            let mut v = now_ms().to_be_bytes().to_vec();
            v = postcard::to_extend(&out(output, n), v).unwrap();
            tree.insert(k, v).unwrap();
        }
        store.flush().unwrap();
    }
    let config = OutboxConfig {
        priorities: vec!["alerts".into()],
        ..OutboxConfig::default()
    };
    let o = outbox(dir.path(), config);
    assert_eq!(o.counters().entries, 3);
    let mut expected = ids("alerts", 1..2);
    expected.extend([out("stats", 0).id, out("stats", 2).id]);
    assert_eq!(deliver(&o, &runtime(), 100), expected);
    // New results are numbered after the moved ones.
    o.push(std::iter::once(out("stats", 7))).unwrap();
    assert_eq!(o.state().next_seq, 4);
}

/// The segment files of the lowest rank, oldest first.
fn rank_files(dir: &std::path::Path, rank: usize) -> Vec<std::path::PathBuf> {
    let root = dir
        .join(OUTBOX_DIR_NAME)
        .join("p")
        .join("up")
        .join(rank.to_string());
    let mut files: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_long_outage_with_drop_oldest_keeps_the_disk_to_max_bytes_though_a_batch_is_in_flight() {
    let size = size_of(&out("stats", 0));
    let dir = tempfile::tempdir().unwrap();
    let config = OutboxConfig {
        max_bytes: 20 * size,
        when_full: WhenFull::DropOldest,
        ..OutboxConfig::default()
    };
    // About four results a segment.
    let o = small_segments(dir.path(), config, 4 * size);
    let rt = runtime();
    o.push((0..10).map(|n| out("stats", n))).unwrap();
    // The broker is down: this batch stays in flight the whole outage.
    let stuck = rt.block_on(o.take(3)).unwrap();
    let mut most_files = 0;
    for n in (10..2000).step_by(10) {
        o.push((n..n + 10).map(|n| out("stats", n))).unwrap();
        most_files = most_files.max(segment_files(dir.path()));
    }
    assert!(o.counters().bytes <= 20 * size);
    let (dropped, kept) = (o.counters().dropped, o.counters().entries);
    assert_eq!(dropped + kept, 2000, "each result kept or counted dropped");
    // The batch in flight, and max_bytes' worth of the newest: about
    // seven segments, however long the outage.
    assert!(most_files <= 9, "{most_files} segment files");
    rt.block_on(o.done(stuck.len(), Vec::new()));
    let mut rest = Vec::new();
    while o.counters().entries > 0 {
        rest.extend(deliver(&o, &rt, 7));
    }
    // After the batch that was in flight, the newest, in order.
    assert_eq!(rest, ids("stats", 2000 - (kept - 3)..2000));
}

#[test]
fn a_damaged_segment_is_given_up_counted_and_delivery_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // Results 100 to 139 are all of one size: ten a segment.
    let size = size_of(&out("stats", 100));
    {
        let o = small_segments(dir.path(), OutboxConfig::default(), 10 * size);
        o.push((100..140).map(|n| out("stats", n))).unwrap();
        o.commit().unwrap();
    }
    assert_eq!(rank_files(dir.path(), 0).len(), 4);
    // A power cut garbled the second segment (results 110 to 119): a
    // byte of its sixth result.
    let second = &rank_files(dir.path(), 0)[1];
    let mut bytes = std::fs::read(second).unwrap();
    let at = (5 * size + size / 2) as usize;
    bytes[at] ^= 0xff;
    std::fs::write(second, &bytes).unwrap();
    let o = small_segments(dir.path(), OutboxConfig::default(), 10 * size);
    let rt = runtime();
    let mut got = Vec::new();
    for _ in 0..10 {
        if o.counters().entries == 0 {
            break;
        }
        got.extend(deliver(&o, &rt, 100));
    }
    let mut want = ids("stats", 100..115);
    want.extend(ids("stats", 120..140));
    assert_eq!(got, want);
    assert_eq!(o.counters().dropped, 5);
    assert_eq!(o.counters().bytes, 0);
}

#[test]
fn delivered_ids_are_kept_two_checkpoints_back_and_no_longer() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    const SEGMENT: u64 = 4096;
    const EACH: u64 = 300;
    let mut positions = Vec::new();
    {
        let o = small_segments(dir.path(), OutboxConfig::default(), SEGMENT);
        // Ten checkpoints, each followed by 300 results delivered.
        for i in 0..10 {
            positions.push(o.commit().unwrap());
            o.push((i * EACH..(i + 1) * EACH).map(|n| out("stats", n)))
                .unwrap();
            while o.counters().entries > 0 {
                deliver(&o, &rt, 128);
            }
        }
        // The ids of the last two intervals are on disk, not the ten:
        // whole segments of ids, plus one at each end.
        let entry = log::HEADER + out("stats", 2999).id.len() as u64;
        let per_segment = SEGMENT / entry;
        let bound = (2 * EACH).div_ceil(per_segment) + 2;
        let files = delivered_files(dir.path()) as u64;
        assert!(
            files <= bound,
            "{files} files of ids, at most {bound} expected"
        );
        assert!(10 * EACH / per_segment > bound, "the case prunes something");
    }
    // The last checkpoint did not complete: the restore goes to the one
    // before, and the replay produces the last two intervals again.
    let o = small_segments(dir.path(), OutboxConfig::default(), SEGMENT);
    o.rewind(positions[8]).unwrap();
    o.push((8 * EACH..10 * EACH).map(|n| out("stats", n)))
        .unwrap();
    assert_eq!(o.counters().replayed, 2 * EACH);
    assert_eq!(o.counters().entries, 0, "nothing is sent twice");
    // New results go out, numbered after every delivered one.
    o.push(std::iter::once(out("stats", 10_000))).unwrap();
    assert_eq!(deliver(&o, &rt, 10), ids("stats", 10_000..10_001));
    assert!(o.state().next_seq > 10 * EACH);
}

#[test]
fn delivered_ids_an_older_version_kept_in_the_database_still_stop_a_resend() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The older layout: a tree of ids keyed by sequence number.
        let store = StateStore::open(dir.path()).unwrap();
        let tree = store.db().open_tree("p/outbox/up/delivered").unwrap();
        for n in [4u64, 5] {
            tree.insert(n.to_be_bytes(), out("stats", n).id.as_bytes())
                .unwrap();
        }
        store.flush().unwrap();
    }
    let o = outbox(dir.path(), OutboxConfig::default());
    assert!(
        o.state().next_seq >= 6,
        "numbers of delivered results are not given again"
    );
    o.rewind(4).unwrap();
    o.push((4..8).map(|n| out("stats", n))).unwrap();
    assert_eq!(o.counters().replayed, 2, "4 and 5 were delivered");
    assert_eq!(deliver(&o, &runtime(), 100), ids("stats", 6..8));
    drop(o);
    let store = StateStore::open(dir.path()).unwrap();
    assert!(
        !store
            .db()
            .tree_names()
            .iter()
            .any(|t| t.as_ref() == b"p/outbox/up/delivered"),
        "the old tree is gone"
    );
}
