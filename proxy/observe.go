package proxy

import (
	"bytes"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/accesslog"
	"github.com/aralez-go/aralez/metrics"
	"github.com/aralez-go/aralez/proxy/pipeline"
)

var (
	strXRequestID = []byte("X-Request-Id")
	strHTTP10     = []byte("HTTP/1.0")
	strHTTP2      = []byte("HTTP/2.0")
)

// protoOf maps a request's protocol to the metrics package's codes.
func protoOf(p []byte) uint8 {
	switch {
	case bytes.Equal(p, strHTTP10):
		return metrics.ProtoHTTP10
	case bytes.Equal(p, strHTTP2):
		return metrics.ProtoHTTP2
	default:
		return metrics.ProtoHTTP11
	}
}

// finished describes one request for metrics and the access log; both
// front ends fill it from their own request types.
type finished struct {
	start                     time.Time
	status                    int
	bytes                     int64
	proto                     uint8
	method, protocol, ua, rid []byte
	upIdx                     int
	upAddr                    string
	req                       *pipeline.Request
	dec                       *pipeline.Decision
	cache                     *pipeline.CacheState
}

// cacheMetric maps the pipeline's cache statuses to the metrics
// package's (CacheOff is not counted).
var cacheMetric = [...]metrics.CacheStatus{
	pipeline.CacheHit:         metrics.CacheHit,
	pipeline.CacheMiss:        metrics.CacheMiss,
	pipeline.CacheStale:       metrics.CacheStale,
	pipeline.CacheRevalidated: metrics.CacheRevalidated,
	pipeline.CacheBypass:      metrics.CacheBypass,
}

// record feeds one finished request to the metrics and the access log.
// It allocates nothing (the access log record is pooled).
func (e *Engine) record(f *finished) {
	m, al := e.opts.Metrics, e.opts.AccessLog
	elapsed := time.Since(f.start)
	if m != nil {
		m.Observe(f.method, f.proto, f.status, f.upIdx, elapsed.Seconds())
		if f.dec.Action == pipeline.ActRespond {
			switch f.dec.Status {
			case 429:
				m.RateLimited()
			case 401, 403:
				m.AuthRejected()
			}
		}
		if cs := f.cache; cs != nil && cs.Status != pipeline.CacheOff && int(cs.Status) < len(cacheMetric) {
			m.ObserveCache(cs.MetricIdx, cacheMetric[cs.Status])
		}
	}
	if al.Enabled(f.status) {
		r := accesslog.AcquireRecord()
		r.Time = f.start
		r.Status = f.status
		r.Bytes = f.bytes
		r.Duration = elapsed.Seconds()
		r.Client = f.dec.Client.AppendTo(r.Client)
		r.Method = append(r.Method, f.method...)
		r.Host = append(r.Host, f.req.Host...)
		r.Path = append(r.Path, f.req.Path...)
		r.Protocol = append(r.Protocol, f.protocol...)
		r.Upstream = append(r.Upstream, f.upAddr...)
		r.UserAgent = append(r.UserAgent, f.ua...)
		r.RequestID = append(r.RequestID, f.rid...)
		if f.cache != nil {
			r.Cache = append(r.Cache, f.cache.Status.Bytes()...)
		}
		al.Log(r)
	}
}

// finishFast records one finished fasthttp request: the response's
// X-Request-Id, Prometheus metrics and the access log.
func (e *Engine) finishFast(ctx *fasthttp.RequestCtx, st *state, start time.Time) {
	ctx.Response.Header.SetBytesKV(strXRequestID, st.dec.RequestID)
	if e.opts.Metrics == nil && e.opts.AccessLog == nil {
		return
	}
	h := &ctx.Request.Header
	protocol := st.req.Proto // the client's: the upstream request's is HTTP/1.1
	if len(protocol) == 0 {
		protocol = h.Protocol()
	}
	e.record(&finished{
		start: start, status: ctx.Response.StatusCode(), bytes: fastBodyBytes(ctx),
		proto: protoOf(protocol), method: h.Method(), protocol: protocol, ua: h.UserAgent(), rid: st.dec.RequestID,
		upIdx: st.upIdx, upAddr: st.upAddr, req: &st.req, dec: &st.dec, cache: &st.cache,
	})
}

// fastBodyBytes is the size of the body about to be sent for ctx: the
// length of a body in memory (the proxy's own answers, buffered upstream
// bodies), the declared length of a streamed one, or -1 when a stream's
// length is unknown; 0 for HEAD.
func fastBodyBytes(ctx *fasthttp.RequestCtx) int64 {
	resp := &ctx.Response
	switch {
	case ctx.IsHead() || resp.SkipBody:
		return 0
	case resp.IsBodyStream():
		return int64(resp.Header.ContentLength())
	}
	return int64(len(resp.Body()))
}

// statusRecorder remembers the status and body bytes a net/http handler
// wrote, for metrics and the access log. It passes Flush through (gRPC
// and streams need it) and unwraps for http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader records code and sends the response head. A final
// response without Content-Type is sent without one: net/http would
// otherwise sniff a type from the body, and an untyped upload labelled
// text/html by the proxy is rendered by browsers (RFC 9110 §8.3: a
// recipient may only assume application/octet-stream, or sniff itself).
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
		untyped(r.ResponseWriter.Header())
	}
	r.ResponseWriter.WriteHeader(code)
}

// untyped marks a header without Content-Type so that net/http adds
// none (a nil value suppresses its sniffing and writes no line).
func untyped(h http.Header) {
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil
	}
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
		untyped(r.ResponseWriter.Header())
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// finishNet records one finished net/http (h2, h2c, gRPC) request: metrics
// and the access log, as finishFast does for HTTP/1.1.
func (e *Engine) finishNet(r *http.Request, st *netState, start time.Time) {
	if e.opts.Metrics == nil && e.opts.AccessLog == nil {
		return
	}
	status := st.rec.status
	if status == 0 {
		status = http.StatusOK
	}
	proto := metrics.ProtoHTTP2
	if r.ProtoMajor == 1 {
		proto = protoOf([]byte(r.Proto))
	}
	e.record(&finished{
		start: start, status: status, bytes: st.rec.bytes, proto: proto,
		method: st.req.Method, protocol: []byte(r.Proto), ua: []byte(r.UserAgent()), rid: st.dec.RequestID,
		upIdx: st.upIdx, upAddr: st.upAddr, req: &st.req, dec: &st.dec, cache: &st.cache,
	})
}
