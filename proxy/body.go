package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/aralez-go/aralez/proxy/pipeline"
)

// This file reads request bodies of known length up to
// body_buffer_bytes into memory before the first attempt, in both front
// ends, so that an idempotent request can be sent again to another
// backend when the first one fails without an answer (the pipeline's
// retry rule, pipeline.BodyBuffered). Larger and chunked bodies stream
// and are sent once.

// bodyBufPool holds the scratch buffers bufferFast reads into.
var bodyBufPool = sync.Pool{New: func() any { return new([]byte) }}

// bufferFast makes req's body replayable when it can: fasthttp hands
// every request body over as a stream (StreamRequestBody), so a body of
// declared length up to limit is read here and set as the request's
// body. It returns the kind of body req then has. An error reading the
// client's body wraps pipeline.ErrClientBody (or is a timeout); req is
// then not to be forwarded.
func bufferFast(req *fasthttp.Request, limit int) (pipeline.Body, error) {
	if !req.IsBodyStream() {
		if len(req.Body()) > 0 {
			return pipeline.BodyBuffered, nil
		}
		return pipeline.BodyNone, nil
	}
	cl := req.Header.ContentLength()
	switch {
	case cl < 0 || cl > limit:
		return pipeline.BodyStreamed, nil
	case cl == 0:
		req.SetBody(nil) // closes the empty stream
		return pipeline.BodyNone, nil
	}
	bp := bodyBufPool.Get().(*[]byte)
	defer bodyBufPool.Put(bp)
	if cap(*bp) < cl {
		*bp = make([]byte, cl)
	}
	b := (*bp)[:cl]
	if _, err := io.ReadFull(req.BodyStream(), b); err != nil {
		if isTimeout(err) {
			return pipeline.BodyNone, err
		}
		return pipeline.BodyNone, fmt.Errorf("%w: %w", pipeline.ErrClientBody, err)
	}
	req.SetBody(b) // copies, and closes the stream
	return pipeline.BodyBuffered, nil
}

// bufferNet reads r's body into memory when its length is declared and
// at most limit, and returns it (nil for a body that streams: unknown
// length, larger, or gRPC, whose messages must flow as they come). An
// error reading the client's body wraps pipeline.ErrClientBody (or is a
// timeout).
func bufferNet(r *http.Request, limit int, grpc bool) ([]byte, error) {
	if grpc || r.Body == nil || r.Body == http.NoBody || r.ContentLength <= 0 || r.ContentLength > int64(limit) {
		return nil, nil
	}
	b := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		if isTimeout(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", pipeline.ErrClientBody, err)
	}
	return b, nil
}

// bufferedBody returns a fresh reader over a buffered request body, for
// one attempt.
func bufferedBody(b []byte) io.ReadCloser {
	return io.NopCloser(bytes.NewReader(b))
}

// clientBodyStatus is the answer to a request whose body could not be
// read from the client: 408 when it came too slowly, else 400.
func clientBodyStatus(err error) int {
	if isTimeout(err) {
		return http.StatusRequestTimeout
	}
	return http.StatusBadRequest
}
