package proxy

import (
	"bytes"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/accesslog"
	"github.com/aralez-go/aralez/metrics"
)

var (
	strXRequestID = []byte("X-Request-Id")
	strHTTP10     = []byte("HTTP/1.0")
	strHTTP2      = []byte("HTTP/2.0")
)

// keepRequestID replaces the generated st.rid with the client's
// X-Request-Id when the peer is a trusted proxy (issue 6); a client's
// value from anyone else is ignored and overwritten when forwarding.
func keepRequestID(h *fasthttp.RequestHeader, st *state) {
	if in := h.PeekBytes(strXRequestID); st.dec.TrustedPeer && len(in) > 0 && len(in) <= 128 {
		st.rid = append(st.rid[:0], in...)
	}
}

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

// finishFast records one finished fasthttp request: the response's
// X-Request-Id, Prometheus metrics and the access log. It allocates
// nothing (the access log record is pooled).
func (e *Engine) finishFast(ctx *fasthttp.RequestCtx, st *state, start time.Time) {
	ctx.Response.Header.SetBytesKV(strXRequestID, st.rid)
	m, al := e.opts.Metrics, e.opts.AccessLog
	if m == nil && al == nil {
		return
	}
	status := ctx.Response.StatusCode()
	elapsed := time.Since(start)
	if m != nil {
		m.Observe(st.req.Method, protoOf(st.req.Proto), status, st.upIdx, elapsed.Seconds())
		if st.dec.Action == ActRespond {
			switch st.dec.Status {
			case 429:
				m.RateLimited()
			case 401, 403:
				m.AuthRejected()
			}
		}
	}
	if al.Enabled(status) {
		r := accesslog.AcquireRecord()
		r.Time = start
		r.Status = status
		r.Bytes = int64(ctx.Response.Header.ContentLength())
		r.Duration = elapsed.Seconds()
		r.Client = st.req.Client.AppendTo(r.Client)
		r.Method = append(r.Method, ctx.Request.Header.Method()...)
		r.Host = append(r.Host, st.req.Host...)
		r.Path = append(r.Path, st.req.Path...)
		r.Protocol = append(r.Protocol, ctx.Request.Header.Protocol()...)
		r.Upstream = append(r.Upstream, st.upAddr...)
		r.UserAgent = append(r.UserAgent, ctx.Request.Header.UserAgent()...)
		r.RequestID = append(r.RequestID, st.rid...)
		al.Log(r)
	}
}

// statusRecorder remembers the status and body bytes a net/http handler
// wrote, for metrics and the access log. It passes Flush through (gRPC
// and streams need it) and unwraps for http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
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
	m, al := e.opts.Metrics, e.opts.AccessLog
	if m == nil && al == nil {
		return
	}
	status := st.rec.status
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := time.Since(start)
	proto := metrics.ProtoHTTP2
	if r.ProtoMajor == 1 {
		proto = protoOf([]byte(r.Proto))
	}
	if m != nil {
		m.Observe(st.req.Method, proto, status, st.upIdx, elapsed.Seconds())
		if st.dec.Action == ActRespond {
			switch st.dec.Status {
			case 429:
				m.RateLimited()
			case 401, 403:
				m.AuthRejected()
			}
		}
	}
	if al.Enabled(status) {
		rec := accesslog.AcquireRecord()
		rec.Time = start
		rec.Status = status
		rec.Bytes = st.rec.bytes
		rec.Duration = elapsed.Seconds()
		rec.Client = st.req.Client.AppendTo(rec.Client)
		rec.Method = append(rec.Method, r.Method...)
		rec.Host = append(rec.Host, st.req.Host...)
		rec.Path = append(rec.Path, st.req.Path...)
		rec.Protocol = append(rec.Protocol, r.Proto...)
		rec.Upstream = append(rec.Upstream, st.upAddr...)
		rec.UserAgent = append(rec.UserAgent, r.UserAgent()...)
		rec.RequestID = append(rec.RequestID, st.rid...)
		al.Log(rec)
	}
}
