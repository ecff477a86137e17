//! Sources that do their I/O on the async runtime: a task that connects
//! and reads, and a channel bounded in records that carries them to the
//! pipeline thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use eddy_abi::Record;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};

use crate::{Acknowledgement, Doorbell, Driver, DriverError, Poll, Rejected};

/// A boxed future, as async trait methods return it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source whose I/O runs on the host's async runtime (tokio), in the
/// shape of rumqttc's event loop: the host starts it, and after a failure
/// starts it again after a backoff; records go through a [`SourceOutput`]
/// to the pipeline thread.
pub trait SourceTask: Send + 'static {
    /// Connects and reads until the peer fails or the input ends. Called at
    /// start and again after every failure (the host waits out the backoff
    /// first), with `resume` the position to go on from (the last position
    /// the pipeline took, or the one restored from a checkpoint).
    ///
    /// Returns `Ok(())` when the input has ended for good; an error says
    /// whether trying again can help ([`DriverError::is_transient`]).
    fn run<'a>(
        &'a mut self,
        out: &'a mut SourceOutput,
        resume: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<(), DriverError>>;
}

/// What a [`SourceTask`] reports to the host besides records.
pub trait SourceEvents: Send + Sync {
    /// The task reached its peer: the source is up again.
    fn connected(&self);

    /// One of the devices the source reads (a Modbus unit, a sensor) was
    /// polled: `fault` says why the poll gave no record, `None` that it
    /// did. The host counts polls and faults per device for `eddy status`
    /// and `/metrics`, while the source as a whole stays up.
    fn device_polled(&self, _device: &str, _fault: Option<&str>) {}
}

/// Records from a task to the pipeline thread.
pub struct Batch {
    /// Records, in the order read.
    pub records: Vec<Record>,
    /// Input that could not become records.
    pub rejected: Vec<Rejected>,
    /// Where the source is after these records, if it can go back there.
    pub position: Option<Vec<u8>>,
    /// Called once these records are safe (see [`Driver::acknowledge`]):
    /// a source acknowledges its peer here.
    pub ack: Option<Ack>,
    /// The source's own watermark after these records, for a source that
    /// keeps one (see [`Driver::watermark`]); a batch may carry only this.
    pub watermark: Option<i64>,
}

impl Batch {
    /// A batch of records only.
    pub fn of(records: Vec<Record>) -> Self {
        Batch {
            records,
            rejected: Vec::new(),
            position: None,
            ack: None,
            watermark: None,
        }
    }
}

/// What a source does once the pipeline has made a batch safe.
pub type Ack = Box<dyn FnOnce() + Send>;

/// The sending side a [`SourceTask`] writes to.
pub struct SourceOutput {
    tx: mpsc::UnboundedSender<(Batch, u32)>,
    /// Room for records in flight: a batch takes a permit per record (at
    /// least one, at most the channel's capacity), which the pipeline
    /// thread gives back when it takes the batch.
    room: Arc<Semaphore>,
    /// The channel's capacity, in records.
    capacity: u32,
    doorbell: Doorbell,
    events: Arc<dyn SourceEvents>,
    /// Batches handed over so far.
    sent: u64,
}

impl SourceOutput {
    /// Says the task has reached its peer: the host shows the source as up.
    pub fn connected(&self) {
        self.events.connected();
    }

    /// Reports a poll of one device (see [`SourceEvents::device_polled`]).
    pub fn device_polled(&self, device: &str, fault: Option<&str>) {
        self.events.device_polled(device, fault);
    }

    /// Hands records (and input that could not become records) to the
    /// pipeline, with the position after them if the source has positions.
    /// Waits while the pipeline lags and the channel is full: back-pressure,
    /// never a silent drop. Fails only when the pipeline has stopped.
    pub async fn send(&mut self, batch: Batch) -> Result<(), DriverError> {
        if batch.records.is_empty()
            && batch.rejected.is_empty()
            && batch.position.is_none()
            && batch.ack.is_none()
            && batch.watermark.is_none()
        {
            return Ok(());
        }
        let stopped = || DriverError::Config("the pipeline has stopped".into());
        let records = batch.records.len();
        let taken = u32::try_from(records)
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity);
        match self.room.try_acquire_many(taken) {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::NoPermits) => {
                // The pipeline must take what is in flight before more
                // fits: it should stop gathering and take it now.
                self.doorbell.ring();
                self.room
                    .acquire_many(taken)
                    .await
                    .map_err(|_| stopped())?
                    .forget();
            }
            Err(TryAcquireError::Closed) => return Err(stopped()),
        }
        self.tx.send((batch, taken)).map_err(|_| stopped())?;
        self.doorbell.arrived(records);
        self.sent += 1;
        Ok(())
    }

    /// Batches handed over so far: a task whose run sent some had a working
    /// connection, whatever ended it.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether the pipeline has stopped taking records.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Sends records only.
    pub async fn records(&mut self, records: Vec<Record>) -> Result<(), DriverError> {
        self.send(Batch::of(records)).await
    }
}

/// Starts a task's I/O when the pipeline first polls it, with the position
/// to resume from. The host's runtime implements it.
pub type Starter = Box<dyn FnOnce(SourceOutput, Option<Vec<u8>>) + Send>;

/// A channel from a task to the pipeline thread: the task's [`SourceOutput`]
/// goes to `start` at the first poll (after a restore has had its chance to
/// [`Driver::seek`]), and the returned driver is what the pipeline polls.
///
/// At most `capacity` records are in flight (a larger batch goes alone):
/// a task that reads one message at a time can get ahead of the pipeline
/// by as many messages as a task reading in bulk, and the pipeline can
/// gather a trickle of them into one turn (see [`Doorbell`]).
pub fn channel(
    capacity: usize,
    doorbell: Doorbell,
    events: Arc<dyn SourceEvents>,
    start: Starter,
) -> ChannelDriver {
    let (tx, rx) = mpsc::unbounded_channel();
    let capacity = u32::try_from(capacity)
        .unwrap_or(u32::MAX)
        .clamp(1, Semaphore::MAX_PERMITS as u32);
    let room = Arc::new(Semaphore::new(capacity as usize));
    ChannelDriver {
        rx,
        room: room.clone(),
        watermark: None,
        acks: Vec::new(),
        rejected: Vec::new(),
        position: None,
        start: Some((
            start,
            SourceOutput {
                tx,
                room,
                capacity,
                doorbell,
                events,
                sent: 0,
            },
        )),
        ended: false,
    }
}

/// The pipeline thread's end of a task's channel: a [`Driver`] that never waits.
pub struct ChannelDriver {
    rx: mpsc::UnboundedReceiver<(Batch, u32)>,
    /// The room its task's batches take, given back as they are taken.
    room: Arc<Semaphore>,
    /// The source's own watermark after the last batch handed out.
    watermark: Option<i64>,
    /// Acknowledgements of batches handed out, waiting for
    /// [`Driver::acknowledge`].
    acks: Vec<Ack>,
    rejected: Vec<Rejected>,
    /// The position after the last record handed out.
    position: Option<Vec<u8>>,
    start: Option<(Starter, SourceOutput)>,
    ended: bool,
}

impl ChannelDriver {
    fn start(&mut self) {
        if let Some((start, output)) = self.start.take() {
            start(output, self.position.clone());
        }
    }
}

impl Drop for ChannelDriver {
    /// A task waiting for room learns that the pipeline has stopped.
    fn drop(&mut self) {
        self.room.close();
    }
}

impl Driver for ChannelDriver {
    /// Hands out whole batches only, as many as fit in `max` records (at
    /// least one, whatever its size): the position, watermark and
    /// acknowledgement after a poll are then exactly those of the records
    /// handed out, so a checkpoint taken between polls never records a
    /// position short of records already in the pipeline's state.
    fn poll(&mut self, out: &mut Vec<Record>, max: usize) -> Result<Poll, DriverError> {
        self.start();
        let mut taken = 0;
        while taken == 0 || taken < max {
            match self.rx.try_recv() {
                Ok((batch, room)) => {
                    self.room.add_permits(room as usize);
                    taken += batch.records.len();
                    self.rejected.extend(batch.rejected);
                    out.extend(batch.records);
                    if let Some(position) = batch.position {
                        self.position = Some(position);
                    }
                    if let Some(ack) = batch.ack {
                        self.acks.push(ack);
                    }
                    if let Some(w) = batch.watermark {
                        self.watermark = Some(self.watermark.map_or(w, |m| m.max(w)));
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    return Ok(if taken > 0 {
                        Poll::Ready
                    } else {
                        Poll::Pending
                    });
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.ended = true;
                    return Ok(if taken > 0 { Poll::Ready } else { Poll::Ended });
                }
            }
        }
        Ok(Poll::Ready)
    }

    fn take_rejected(&mut self) -> Vec<Rejected> {
        std::mem::take(&mut self.rejected)
    }

    fn position(&self) -> Option<Vec<u8>> {
        self.position.clone()
    }

    fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    fn take_acknowledgement(&mut self) -> Acknowledgement {
        Acknowledgement::new(std::mem::take(&mut self.acks))
    }

    fn seek(&mut self, position: &[u8]) -> Result<(), DriverError> {
        if self.start.is_none() {
            return Err(DriverError::Config(
                "a running task cannot go back; seek before the first poll".into(),
            ));
        }
        self.position = Some(position.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    #[derive(Default)]
    struct Flag(AtomicBool);
    impl SourceEvents for Flag {
        fn connected(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn batches_are_handed_out_whole_with_their_position_and_watermark() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        let mut driver = channel(
            8,
            Doorbell::new(),
            Arc::new(Flag::default()),
            Box::new(move |mut out, _| {
                handle.spawn(async move {
                    for (n, at, w) in [(3, b"p1", 10), (2, b"p2", 20)] {
                        let batch = Batch {
                            records: (0..n).map(|t| Record::new("k", t)).collect(),
                            rejected: Vec::new(),
                            position: Some(at.to_vec()),
                            ack: None,
                            watermark: Some(w),
                        };
                        out.send(batch).await.unwrap();
                    }
                    std::future::pending::<()>().await;
                });
            }),
        );
        let mut out = Vec::new();
        driver.poll(&mut out, 2).unwrap();
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
        // A batch of 3 for at most 2 records: all 3, never a part of it.
        driver.poll(&mut out, 2).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(driver.position().as_deref(), Some(&b"p1"[..]));
        assert_eq!(driver.watermark(), Some(10));
        driver.poll(&mut out, 2).unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(driver.position().as_deref(), Some(&b"p2"[..]));
        assert_eq!(driver.watermark(), Some(20));
    }

    #[test]
    fn records_cross_the_channel_in_order_and_a_full_channel_holds_the_sender_back() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bell = Doorbell::new();
        let events = Arc::new(Flag::default());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let handle = runtime.handle().clone();
        let mut driver = channel(
            2,
            bell.clone(),
            events.clone(),
            Box::new(move |mut out, resume| {
                started_tx.send(resume).unwrap();
                handle.spawn(async move {
                    out.connected();
                    for i in 0..10 {
                        out.records(vec![Record::new("k", i)]).await.unwrap();
                    }
                });
            }),
        );
        driver.seek(b"at").unwrap();
        let mut out = Vec::new();
        assert_eq!(driver.poll(&mut out, 100).unwrap(), Poll::Pending);
        assert_eq!(started_rx.recv().unwrap().as_deref(), Some(&b"at"[..]));
        // Two batches fit; the task waits for room.
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
        assert!(bell.wait_until(Instant::now()));
        assert!(events.0.load(Ordering::SeqCst));
        driver.poll(&mut out, 100).unwrap();
        assert_eq!(out.len(), 2);
        while out.len() < 10 {
            runtime.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
            driver.poll(&mut out, 1).unwrap();
        }
        let times: Vec<i64> = out.iter().map(|r| r.time).collect();
        assert_eq!(times, (0..10).collect::<Vec<_>>());
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
        assert_eq!(driver.poll(&mut out, 1).unwrap(), Poll::Ended);
        assert!(driver.seek(b"x").is_err());
    }

    #[test]
    fn room_is_counted_in_records_and_a_waiting_sender_learns_the_pipeline_stopped() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        let (result_tx, result_rx) = std::sync::mpsc::channel();
        let mut driver = channel(
            4,
            Doorbell::new(),
            Arc::new(Flag::default()),
            Box::new(move |mut out, _| {
                handle.spawn(async move {
                    // Four single records fill the room; a batch of ten is
                    // more than the room and goes alone once it is empty.
                    for i in 0..4 {
                        out.records(vec![Record::new("k", i)]).await.unwrap();
                    }
                    let ten = (0..10).map(|t| Record::new("k", t)).collect();
                    out.records(ten).await.unwrap();
                    let last = out.records(vec![Record::new("k", 99)]).await;
                    result_tx.send(last.is_err()).unwrap();
                });
            }),
        );
        let mut out = Vec::new();
        driver.poll(&mut out, 100).unwrap();
        let settle =
            || runtime.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
        settle();
        driver.poll(&mut out, 100).unwrap();
        assert_eq!(out.len(), 4, "four records fill a room of four");
        settle();
        // The batch of ten took the whole room; the last record waits for
        // room, and the pipeline stops: the waiting sender fails, it never
        // hangs.
        assert!(result_rx.try_recv().is_err(), "the last record waits");
        drop(driver);
        settle();
        assert_eq!(result_rx.try_recv(), Ok(true));
    }
}
