package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
	"github.com/hookpost/hookpost/test/harness"
)

func TestReplayOneAndInBulk(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	recv := harness.NewReceiver()
	defer recv.Close()
	// The first request succeeds, every later one is rejected with a 400, which is not retried: deliveries
	// created one after another end Succeeded, Failed, Failed.
	recv.Script("/mixed", harness.Response{Status: http.StatusOK}, harness.Response{Status: http.StatusBadRequest, Body: "bad"})
	createReadySubscription(t, fixtures.Subscription(ns, "mixed", recv.URL+"/mixed", fixtures.InsecureHTTP()))

	var names []string
	for i, want := range []hookpostv1.DeliveryPhase{hookpostv1.DeliverySucceeded, hookpostv1.DeliveryFailed, hookpostv1.DeliveryFailed} {
		d := fixtures.Delivery(ns, "mixed", fmt.Sprintf("evt-%d", i), "order.created", map[string]int{"order_id": i}, fixtures.SealedBy(testSealer))
		if err := k8sClient.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		waitForPhase(t, d, want)
		names = append(names, d.Name)
	}
	// Another subscription's failed delivery is left alone.
	other := fixtures.Delivery(ns, "other", "evt-x", "order.created", map[string]int{"order_id": 9}, fixtures.SealedBy(testSealer))
	if err := k8sClient.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "replay", "--subscription", "mixed", "--phase", "Failed", "-n", ns)
	if !strings.Contains(out, "2 deliveries: replay requested") {
		t.Errorf("bulk replay output:\n%s", out)
	}
	if replayValue(t, ns, names[0]) != "" || replayValue(t, ns, other.Name) != "" {
		t.Error("bulk replay of Failed deliveries annotated a Succeeded delivery or another subscription's")
	}
	for _, n := range names[1:] {
		if replayValue(t, ns, n) == "" {
			t.Errorf("delivery %s was not annotated", n)
		}
		waitForReplayAccepted(t, ns, n)
	}

	out = mustRun(t, "replay", names[0], "-n", ns)
	if !strings.Contains(out, "1 delivery: replay requested") || replayValue(t, ns, names[0]) == "" {
		t.Errorf("single replay output:\n%s", out)
	}
	waitForReplayAccepted(t, ns, names[0])
	if n := len(recv.Requests("/mixed")); n < 6 {
		t.Errorf("receiver got %d requests, want 3 first attempts and 3 replays", n)
	}

	if out := mustRun(t, "replay", "--subscription", "mixed", "--since", "1h", "-n", ns); !strings.Contains(out, "3 deliveries: replay requested") {
		t.Errorf("replay --since 1h:\n%s", out)
	}
	var res struct {
		Replay   string   `json:"replay"`
		Replayed []string `json:"replayed"`
		Count    int      `json:"count"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "replay", names[0], "-n", ns, "-o", "json")), &res); err != nil || res.Count != 1 || len(res.Replayed) != 1 || res.Replayed[0] != names[0] || res.Replay != replayValue(t, ns, names[0]) {
		t.Errorf("replay -o json = %+v (%v), want delivery %s and the annotation value set", res, err, names[0])
	}
	if out := mustRun(t, "replay", "--subscription", "nobody", "-n", ns); !strings.Contains(out, "0 deliveries: replay requested") {
		t.Errorf("replay of a subscription without deliveries:\n%s", out)
	}
	for _, args := range [][]string{
		{"replay", "-n", ns},
		{"replay", names[0], "--subscription", "mixed", "-n", ns},
		{"replay", "--subscription", "mixed", "--phase", "Broken", "-n", ns},
	} {
		if r := run(t, "", args...); r.code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
}

func replayValue(t *testing.T, ns, name string) string {
	t.Helper()
	d := &hookpostv1.WebhookDelivery{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	return d.Annotations[hookpostv1.AnnotationReplay]
}

// waitForReplayAccepted waits until the delivery controller acted on the replay value and finished the resend.
func waitForReplayAccepted(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		d := &hookpostv1.WebhookDelivery{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return err
		}
		if d.Annotations[hookpostv1.AnnotationReplayed] != d.Annotations[hookpostv1.AnnotationReplay] {
			return errors.New("replay not accepted yet")
		}
		if d.Status.Attempts < 2 || !d.Status.Phase.Finished() {
			return fmt.Errorf("replay not sent yet: %d attempts, phase %s", d.Status.Attempts, d.Status.Phase)
		}
		return nil
	})
}

func waitForPhase(t *testing.T, d *hookpostv1.WebhookDelivery, want hookpostv1.DeliveryPhase) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		if d.Status.Phase != want {
			return fmt.Errorf("delivery %s is %q, want %s", d.Name, d.Status.Phase, want)
		}
		return nil
	})
}
