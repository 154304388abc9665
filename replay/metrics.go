package replay

import (
	"bufio"
	"fmt"
	"io"
	"sync/atomic"
)

// metrics holds the server's counters. Per-table counters live in a map
// built once at start (tables never change), so updates take no lock.
type metrics struct {
	insertBytes atomic.Int64 // bytes of insert messages received
	tables      map[string]*tableMetrics
}

type tableMetrics struct {
	inserts     atomic.Int64
	samples     atomic.Int64
	sampleBytes atomic.Int64
}

func newMetrics(names []string) *metrics {
	m := &metrics{tables: make(map[string]*tableMetrics, len(names))}
	for _, n := range names {
		m.tables[n] = &tableMetrics{}
	}
	return m
}

func (m *metrics) inserted(table string, n int) {
	if t := m.tables[table]; t != nil && n > 0 {
		t.inserts.Add(int64(n))
	}
}

func (m *metrics) sampled(table string, n, bytes int) {
	if t := m.tables[table]; t != nil {
		t.samples.Add(int64(n))
		t.sampleBytes.Add(int64(bytes))
	}
}

// WriteMetrics writes the server's metrics in the Prometheus text
// exposition format: item and byte counters, limiter waits and state, table
// sizes and the chunk store.
func (s *Server) WriteMetrics(w io.Writer) error {
	bw := bufio.NewWriter(w)
	family := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	names := s.tableNames()
	infos := make(map[string]TableInfo, len(names))
	for _, n := range names {
		infos[n] = s.tables[n].Info()
	}
	perTable := func(name, typ, help string, v func(string, TableInfo) float64) {
		family(name, typ, help)
		for _, n := range names {
			fmt.Fprintf(bw, "%s{table=%q} %v\n", name, n, v(n, infos[n]))
		}
	}
	perTable("replay_inserted_items_total", "counter", "Items inserted (new keys) through the insert stream.",
		func(n string, _ TableInfo) float64 { return float64(s.metrics.tables[n].inserts.Load()) })
	perTable("replay_sampled_items_total", "counter", "Items sent to samplers.",
		func(n string, _ TableInfo) float64 { return float64(s.metrics.tables[n].samples.Load()) })
	perTable("replay_sampled_bytes_total", "counter", "Bytes of sample responses sent.",
		func(n string, _ TableInfo) float64 { return float64(s.metrics.tables[n].sampleBytes.Load()) })
	perTable("replay_table_size", "gauge", "Items in the table.",
		func(_ string, i TableInfo) float64 { return float64(i.Size) })
	perTable("replay_table_max_size", "gauge", "Configured max size.",
		func(_ string, i TableInfo) float64 { return float64(i.MaxSize) })
	perTable("replay_limiter_insert_waits_total", "counter", "Inserts that waited for the rate limiter.",
		func(_ string, i TableInfo) float64 { return float64(i.InsertWaits) })
	perTable("replay_limiter_sample_waits_total", "counter", "Sample calls that waited for the rate limiter.",
		func(_ string, i TableInfo) float64 { return float64(i.SampleWaits) })
	perTable("replay_limiter_inserts_waiting", "gauge", "Inserts waiting for the rate limiter now.",
		func(_ string, i TableInfo) float64 { return float64(i.InsertsWaiting) })
	perTable("replay_limiter_samples_waiting", "gauge", "Sample calls waiting for the rate limiter now.",
		func(_ string, i TableInfo) float64 { return float64(i.SamplesWaiting) })
	perTable("replay_limiter_inserts", "gauge", "Limiter insert counter since the last reset.",
		func(_ string, i TableInfo) float64 { return float64(i.Limiter.Inserts) })
	perTable("replay_limiter_samples", "gauge", "Limiter sample counter since the last reset.",
		func(_ string, i TableInfo) float64 { return float64(i.Limiter.Samples) })
	perTable("replay_limiter_deletes", "gauge", "Limiter delete counter since the last reset.",
		func(_ string, i TableInfo) float64 { return float64(i.Limiter.Deletes) })
	perTable("replay_table_episodes", "gauge", "Episodes with live items.",
		func(_ string, i TableInfo) float64 { return float64(i.NumEpisodes) })
	family("replay_insert_bytes_total", "counter", "Bytes of insert messages received.")
	fmt.Fprintf(bw, "replay_insert_bytes_total %d\n", s.metrics.insertBytes.Load())
	family("replay_chunks", "gauge", "Chunks held by the server.")
	fmt.Fprintf(bw, "replay_chunks %d\n", s.chunks.Len())
	family("replay_chunk_bytes", "gauge", "Payload bytes of the chunks held.")
	fmt.Fprintf(bw, "replay_chunk_bytes %d\n", s.chunks.Bytes())
	return bw.Flush()
}
