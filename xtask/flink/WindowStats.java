// The job `cargo xtask bench --vs-flink` runs on Apache Flink: the same CSV
// file and the same windows as eddy's side of the comparison. Lines are
// `key,time_ms,value`; watermarks trail the largest time by 2 s; count, sum,
// min and max of `value` per key and 1 s tumbling event-time window, as an
// AggregateFunction (one accumulator per window, as eddy's
// window-stats-incremental); the results are counted and discarded.
//
// Usage: java -cp 'pyflink/lib/*:.' WindowStats FILE

import java.time.Duration;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.accumulators.LongCounter;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.connector.file.src.FileSource;
import org.apache.flink.connector.file.src.reader.TextLineInputFormat;
import org.apache.flink.core.fs.Path;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;

public class WindowStats {
    /** One CSV line. */
    public static class Reading {
        public String key;
        public long time;
        public double value;

        public Reading() {}

        static Reading parse(String line) {
            int a = line.indexOf(',');
            int b = line.indexOf(',', a + 1);
            Reading r = new Reading();
            r.key = line.substring(0, a);
            r.time = Long.parseLong(line.substring(a + 1, b));
            r.value = Double.parseDouble(line.substring(b + 1));
            return r;
        }
    }

    /** A window's statistics, and its accumulator. */
    public static class Stats {
        public long count;
        public double sum;
        public double min = Double.POSITIVE_INFINITY;
        public double max = Double.NEGATIVE_INFINITY;

        public Stats() {}
    }

    /** Count, sum, min and max, one accumulator per window. */
    public static class Aggregate implements AggregateFunction<Reading, Stats, Stats> {
        @Override
        public Stats createAccumulator() {
            return new Stats();
        }

        @Override
        public Stats add(Reading r, Stats s) {
            s.count += 1;
            s.sum += r.value;
            s.min = Math.min(s.min, r.value);
            s.max = Math.max(s.max, r.value);
            return s;
        }

        @Override
        public Stats getResult(Stats s) {
            return s;
        }

        @Override
        public Stats merge(Stats a, Stats b) {
            a.count += b.count;
            a.sum += b.sum;
            a.min = Math.min(a.min, b.min);
            a.max = Math.max(a.max, b.max);
            return a;
        }
    }

    /** Counts the windows and the records they held, for the comparison's check. */
    public static class Count extends RichMapFunction<Stats, Stats> {
        private final LongCounter windows = new LongCounter();
        private final LongCounter records = new LongCounter();

        @Override
        public void open(OpenContext context) {
            getRuntimeContext().addAccumulator("windows", windows);
            getRuntimeContext().addAccumulator("records", records);
        }

        @Override
        public Stats map(Stats s) {
            windows.add(1);
            records.add(s.count);
            return s;
        }
    }

    public static void main(String[] args) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        FileSource<String> file =
                FileSource.forRecordStreamFormat(new TextLineInputFormat(), new Path(args[0])).build();
        env.fromSource(file, WatermarkStrategy.noWatermarks(), "csv")
                .map(Reading::parse)
                .assignTimestampsAndWatermarks(
                        WatermarkStrategy.<Reading>forBoundedOutOfOrderness(Duration.ofSeconds(2))
                                .withTimestampAssigner((r, previous) -> r.time))
                .keyBy(r -> r.key)
                .window(TumblingEventTimeWindows.of(Duration.ofSeconds(1)))
                .aggregate(new Aggregate())
                .map(new Count())
                .sinkTo(new DiscardingSink<>());
        JobExecutionResult result = env.execute("window-stats");
        System.out.println(
                "{\"windows\": " + result.getAccumulatorResult("windows")
                        + ", \"records\": " + result.getAccumulatorResult("records") + "}");
    }
}
