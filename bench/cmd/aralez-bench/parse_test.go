package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseWrk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		want    loadResult
		wantErr string
	}{
		{name: "ok", file: "wrk-ok.txt", want: loadResult{Requests: 79143, Seconds: 1.09989, RPS: 71955.38,
			P50us: 101, P99us: 319, P999us: 1918}},
		{name: "non2xx", file: "wrk-non2xx.txt", want: loadResult{Requests: 85070, Seconds: 1.101005, RPS: 77265.77,
			P50us: 89, P99us: 977, P999us: 2784, Non2xx: 85070}},
		{name: "refused", file: "wrk-refused.txt", wantErr: "Connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseWrk(testdata(t, tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseWrk(%s) error = %v; want %q", tt.file, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseWrk(%s) error: %v", tt.file, err)
			}
			if got != tt.want {
				t.Errorf("parseWrk(%s) = %+v; want %+v", tt.file, got, tt.want)
			}
		})
	}
}

func TestParseWrkErrors(t *testing.T) {
	t.Parallel()
	out := "Requests/sec: 10.00\nBENCH_WRK requests=20 duration_us=2000000 bytes=1 connect=1 read=2 write=3 status=0 timeout=4 p50_us=1 p99_us=2 p999_us=3 max_us=4\n"
	got, err := parseWrk([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if got.Errors != 10 || got.Requests != 20 || got.Seconds != 2 {
		t.Errorf("parseWrk errors = %v, requests %v, seconds %v; want 10, 20, 2", got.Errors, got.Requests, got.Seconds)
	}
	if want := "wrk: connect 1, read 2, write 3, timeout 4"; got.ErrText != want {
		t.Errorf("parseWrk ErrText = %q; want %q", got.ErrText, want)
	}
	if _, err := parseWrk([]byte("BENCH_WRK requests=x\n")); err == nil {
		t.Errorf("parseWrk(bad number) = nil error; want one")
	}
}

func TestParseH2load(t *testing.T) {
	t.Parallel()
	got, err := parseH2load(testdata(t, "h2load-ok.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := loadResult{Requests: 22477, Seconds: 1.00, RPS: 22477.00}
	if got != want {
		t.Errorf("parseH2load(ok) = %+v; want %+v", got, want)
	}
	if _, err := parseH2load(testdata(t, "h2load-refused.txt")); err == nil || !strings.Contains(err.Error(), "no request") {
		t.Errorf("parseH2load(refused) error = %v; want 'no request'", err)
	}
	if _, err := parseH2load([]byte("garbage")); err == nil {
		t.Errorf("parseH2load(garbage) = nil error; want one")
	}
	bad := "finished in 2.00s, 10.00 req/s, 1MB/s\nrequests: 30 total, 30 started, 30 done, 20 succeeded, 10 failed, 2 errored, 1 timeout\nstatus codes: 20 2xx, 1 3xx, 2 4xx, 7 5xx\n"
	got, err = parseH2load([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 20 || got.Errors != 13 || got.Non2xx != 10 {
		t.Errorf("parseH2load(failures) = requests %v errors %v non2xx %v; want 20, 13, 10", got.Requests, got.Errors, got.Non2xx)
	}
}

func TestParseH2loadLog(t *testing.T) {
	t.Parallel()
	p50, p99, p999, err := parseH2loadLog(testdata(t, "h2load-log.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if !(p50 > 0 && p50 <= p99 && p99 <= p999) {
		t.Errorf("parseH2loadLog = %v, %v, %v; want 0 < p50 <= p99 <= p99.9", p50, p99, p999)
	}
	log := ""
	for i := 1; i <= 1000; i++ {
		log += "1795973126045345\t200\t" + strconv.Itoa(i) + "\n"
	}
	p50, p99, p999, err = parseH2loadLog([]byte(log))
	if err != nil {
		t.Fatal(err)
	}
	if p50 != 501 || p99 != 991 || p999 != 1000 {
		t.Errorf("parseH2loadLog(1..1000) = %v, %v, %v; want 501, 991, 1000", p50, p99, p999)
	}
	if _, _, _, err := parseH2loadLog(nil); err == nil {
		t.Errorf("parseH2loadLog(empty) = nil error; want one")
	}
}

func TestParseBenchd(t *testing.T) {
	t.Parallel()
	got, err := parseBenchd([]byte(`{"requests":17496,"errors":2,"seconds":1.0,"rps":17482.7,"p50_us":875,"p99_us":5363,"p999_us":8887,"first_error":"boom"}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := loadResult{Requests: 17496, Errors: 2, Seconds: 1, RPS: 17482.7, P50us: 875, P99us: 5363, P999us: 8887, ErrText: "boom"}
	if got != want {
		t.Errorf("parseBenchd = %+v; want %+v", got, want)
	}
	if _, err := parseBenchd([]byte("benchd: dialing: refused\n")); err == nil {
		t.Errorf("parseBenchd(error text) = nil error; want one")
	}
}

func TestParseGoBench(t *testing.T) {
	t.Parallel()
	bs, failed := parseGoBench(testdata(t, "gobench.txt"))
	if len(bs) != 4 {
		t.Fatalf("parseGoBench found %d benchmarks; want 4: %+v", len(bs), bs)
	}
	want := goBench{Pkg: "github.com/aralez-go/aralez/proxy", Name: "BenchmarkProxyRequest-2", NsPerOp: 2400, BytesPerOp: 64, AllocsPerOp: 2}
	if bs[2] != want {
		t.Errorf("parseGoBench[2] = %+v; want %+v", bs[2], want)
	}
	if bs[3].Pkg != "github.com/aralez-go/aralez/config" || bs[3].AllocsPerOp != 900 {
		t.Errorf("parseGoBench[3] = %+v; want config package, 900 allocs/op", bs[3])
	}
	if len(failed) != 1 || !strings.Contains(failed[0], "aralez/tls") {
		t.Errorf("parseGoBench failed = %q; want the tls package", failed)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     []float64
		median float64
		spread float64
	}{
		{"odd", []float64{3, 1, 2}, 2, 1},
		{"even", []float64{4, 1, 3, 2}, 2.5, 3 / 2.5},
		{"one", []float64{7}, 7, 0},
		{"empty", nil, math.NaN(), math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := append([]float64(nil), tt.in...)
			if got := median(tt.in); !same(got, tt.median) {
				t.Errorf("median(%v) = %v; want %v", tt.in, got, tt.median)
			}
			if got := spread(tt.in); !same(got, tt.spread) {
				t.Errorf("spread(%v) = %v; want %v", tt.in, got, tt.spread)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Errorf("median modified its input: %v; want %v", tt.in, in)
				}
			}
		})
	}
	r := ratios(map[int]float64{1: 10, 2: 30, 3: 5}, map[int]float64{1: 5, 2: 10, 4: 1})
	if len(r) != 2 || r[0] != 2 || r[1] != 3 {
		t.Errorf("ratios = %v; want [2 3] (rounds present in both only)", r)
	}
	b := bestPerRound(map[int]float64{1: 1, 2: 5}, map[int]float64{1: 3, 3: 2})
	if b[1] != 3 || b[2] != 5 || b[3] != 2 {
		t.Errorf("bestPerRound = %v; want 1:3 2:5 3:2", b)
	}
	if lo, hi := minMax([]float64{2, -1, 5}); lo != -1 || hi != 5 {
		t.Errorf("minMax = %v, %v; want -1, 5", lo, hi)
	}
}

func same(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) < 1e-9
}
