package controller

import "testing"

func TestWrittenStatusPredates(t *testing.T) {
	// A reconcile read the Memcached at resourceVersion 10 and wrote a status
	// that the API server stored as 14: 12 is a write in between, such as a
	// status this reconciler wrote just before, that the cache delivers late.
	w := writtenStatus{before: "10", after: "14"}
	for _, tc := range []struct {
		cached string
		want   bool
	}{
		{cached: "10", want: true},
		{cached: "12", want: true},
		{cached: "9", want: true},
		{cached: "14", want: false},
		{cached: "15", want: false},
		{cached: "not-a-version", want: false},
	} {
		if got := w.predates(tc.cached); got != tc.want {
			t.Errorf("Written over %q as %q: predates(%q) = %v, want %v", w.before, w.after, tc.cached, got, tc.want)
		}
	}
}
