package auth

import "testing"

func TestCtEqual(t *testing.T) {
	t.Parallel()
	long := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"a", "a", true},
		{"a", "b", false},
		{"a", "", false},
		{string(long), string(long), true},
		{string(long), string(long[:len(long)-1]) + "Z", false},
		{string(long), "X" + string(long[1:]), false},
		{string(long[:16]), string(long[:8]) + "89abcdeX", false},
		{string(long[:16]), string(long[:16]), true},
	}
	for _, tt := range tests {
		if got := ctEqual([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("ctEqual(%q, %q) = %v; want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
