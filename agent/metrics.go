package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"dock/queue"
)

// metrics are the agent's Prometheus figures, on their own registry.
type metrics struct {
	reg            *prometheus.Registry
	offloadBytes   prometheus.Counter
	offloaded      prometheus.Counter
	verifiedBytes  prometheus.Counter
	verified       prometheus.Counter
	integrityFault prometheus.Counter
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{
		reg:            prometheus.NewRegistry(),
		offloadBytes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "dock_offload_bytes_total", Help: "Bytes copied off cameras into the spool."}),
		offloaded:      prometheus.NewCounter(prometheus.CounterOpts{Name: "dock_offload_recordings_total", Help: "Recordings copied off cameras into the spool."}),
		verifiedBytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "dock_upload_verified_bytes_total", Help: "Bytes central verified by receipt."}),
		verified:       prometheus.NewCounter(prometheus.CounterOpts{Name: "dock_upload_verified_recordings_total", Help: "Recordings central verified by receipt."}),
		integrityFault: prometheus.NewCounter(prometheus.CounterOpts{Name: "dock_receipt_mismatch_total", Help: "Receipts whose hash or size differed from the dock's."}),
	}
	m.reg.MustRegister(m.offloadBytes, m.offloaded, m.verifiedBytes, m.verified, m.integrityFault, stateCollector{a}, prometheus.NewGoCollector())
	return m
}

var (
	descQueue     = prometheus.NewDesc("dock_queue_recordings", "Recordings on the dock by state.", []string{"state"}, nil)
	descQueueB    = prometheus.NewDesc("dock_queue_bytes", "Bytes on the dock by state.", []string{"state"}, nil)
	descPending   = prometheus.NewDesc("dock_queue_pending_by_class", "Recordings waiting to upload by class (hold, evidence, patrol).", []string{"class"}, nil)
	descOldest    = prometheus.NewDesc("dock_queue_oldest_pending_seconds", "Age of the oldest recording not yet verified.", nil, nil)
	descFaults    = prometheus.NewDesc("dock_faults", "Faults by code and lifecycle state.", []string{"code", "state"}, nil)
	descSlot      = prometheus.NewDesc("dock_slot_state", "1 for the state each bay is in.", []string{"slot", "state"}, nil)
	descSpoolFree = prometheus.NewDesc("dock_spool_free_bytes", "Free space on the spool's filesystem.", nil, nil)
)

// stateCollector reads the queue, faults and slots at scrape time.
type stateCollector struct{ a *Agent }

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueue, descQueueB, descPending, descOldest, descFaults, descSlot, descSpoolFree} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	if st, err := a.store.Stats(); err == nil {
		for _, s := range []queue.State{queue.Spooled, queue.Uploading, queue.Verified, queue.Freed} {
			ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(st.Count[s]), string(s))
			ch <- prometheus.MustNewConstMetric(descQueueB, prometheus.GaugeValue, float64(st.Bytes[s]), string(s))
		}
		age := 0.0
		if !st.Oldest.IsZero() {
			age = a.now().Sub(st.Oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age)
		for k, v := range st.Waiting {
			ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(v), k)
		}
	}
	counts := map[[2]string]int{}
	for _, f := range a.Faults() {
		counts[[2]string{string(f.Code), string(f.State)}]++
	}
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(descFaults, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
	for _, s := range a.slots {
		s.mu.Lock()
		st := s.state
		s.mu.Unlock()
		for _, name := range []SlotState{Empty, Docked, Identified, Offloading, Charging, OutOfService, Removed} {
			v := 0.0
			if name == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descSlot, prometheus.GaugeValue, v, strconv.Itoa(s.index), string(name))
		}
	}
	if free, err := a.store.Spool().FreeBytes(); err == nil {
		ch <- prometheus.MustNewConstMetric(descSpoolFree, prometheus.GaugeValue, float64(free))
	}
}

// MetricsAddr is where the metrics endpoint listens, once it does ("" before).
func (a *Agent) MetricsAddr() string {
	v, _ := a.metricsAddr.Load().(string)
	return v
}

// serveMetrics serves /metrics on addr (a local address) until ctx ends.
func (a *Agent) serveMetrics(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	a.metricsAddr.Store(l.Addr().String())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	return serveHTTP(ctx, l, mux)
}

// serveHTTP serves h on l until ctx ends.
func serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
