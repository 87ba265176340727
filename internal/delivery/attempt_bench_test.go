package delivery_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/signing"
)

// jsonData returns a JSON object of about n bytes.
func jsonData(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","qty":%d,"price":19.99}`, i, i%7+1)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func BenchmarkEncodeSignSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := newSender(delivery.SenderOptions{})

	for _, size := range []int{1 << 10, 16 << 10} {
		a := testAttempt(srv.URL)
		a.Signatures = []signing.Signature{{Scheme: signing.SchemeStandardWebhooks}}
		a.Event.Data = jsonData(size)
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				req, err := delivery.BuildRequest(a, "Hookpost/bench")
				if err != nil {
					b.Fatal(err)
				}
				if out := s.Send(context.Background(), req, 5*time.Second, false, a.Now); out.Class != delivery.ClassSucceeded {
					b.Fatalf("outcome = %+v", out)
				}
			}
		})
	}
}
