package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/harness"
)

// settleTimeout bounds the wait for every delivery to finish; the flaky endpoint alone needs about 6s.
const settleTimeout = 2 * time.Minute

// flow is the demo's story once the servers run: subscribe, publish, watch the deliveries settle.
type flow struct {
	ctx           context.Context
	p             *printer
	cp            *harness.ControlPlane
	rcv           *receiver
	src           eventSource
	operatorPid   int
	subscriptions []demoSubscription
	events        []sampleEvent
}

// demoTenants is the demo namespace's tenant grant: the catalogue's events carry tenant 123 and the urBackend
// insert carries none, which only a namespace granted every tenant receives.
const demoTenants = "*"

// grantTenants does what a cluster admin does before teams subscribe: the operator runs with tenant isolation on
// (its default), so the namespace receives only the tenants it is granted.
func (f *flow) grantTenants() error {
	done := f.p.step("Granting namespace %s the tenants %q (tenant isolation is on): kubectl annotate namespace %s %s=%s",
		namespace, demoTenants, namespace, hookpostv1.AnnotationTenants, demoTenants)
	ns := &corev1.Namespace{}
	if err := f.cp.Client.Get(f.ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		return fmt.Errorf("read namespace %s: %w", namespace, err)
	}
	patch := client.MergeFrom(ns.DeepCopy())
	if ns.Annotations == nil {
		ns.Annotations = map[string]string{}
	}
	ns.Annotations[hookpostv1.AnnotationTenants] = demoTenants
	if err := f.cp.Client.Patch(f.ctx, ns, patch); err != nil {
		return fmt.Errorf("grant namespace %s its tenants: %w", namespace, err)
	}
	done("events reach subscriptions only in namespaces granted their tenant")
	return nil
}

// applySubscriptions creates the Secret and the subscriptions, waits until the operator reports them Ready, and
// hands the receiver each signing secret, read from the Secret the subscription's status names.
func (f *flow) applySubscriptions() error {
	done := f.p.step("Applying %d WebhookSubscriptions in namespace %s", len(f.subscriptions), namespace)
	c := f.cp.Client
	if err := c.Create(f.ctx, urbackendSecret()); err != nil {
		return fmt.Errorf("create Secret %s: %w", urbackendSecretName, err)
	}
	for _, s := range f.subscriptions {
		if err := c.Create(f.ctx, s.object(f.rcv.URL())); err != nil {
			return fmt.Errorf("create WebhookSubscription %s: %w", s.name, err)
		}
		f.rcv.addEndpoint(s.path, &endpoint{subscription: s.name, format: s.spec.PayloadFormat,
			scheme: s.spec.Signing.Scheme, header: string(s.spec.Signing.Header), failFirst: s.failFirst})
	}
	for _, s := range f.subscriptions {
		var sub hookpostv1.WebhookSubscription
		err := poll(f.ctx, 60*time.Second, func() (bool, error) {
			if err := f.operatorAlive(); err != nil {
				return false, err
			}
			if err := c.Get(f.ctx, client.ObjectKey{Namespace: namespace, Name: s.name}, &sub); err != nil {
				return false, err
			}
			return apimeta.IsStatusConditionTrue(sub.Status.Conditions, hookpostv1.ConditionReady) && sub.Status.SigningSecretRef != nil, nil
		})
		if err != nil {
			return fmt.Errorf("wait for WebhookSubscription %s to be Ready: %w", s.name, err)
		}
		ref := sub.Status.SigningSecretRef
		var secret corev1.Secret
		if err := c.Get(f.ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, &secret); err != nil {
			return fmt.Errorf("read the signing secret of %s: %w", s.name, err)
		}
		key := ref.Key
		if key == "" {
			key = hookpostv1.DefaultSecretKey
		}
		f.rcv.setSecret(s.path, string(secret.Data[key]))
	}
	done("all Ready; the receiver read their signing secrets from status.signingSecretRef")
	return nil
}

// expectedDeliveries is how many WebhookDeliveries the sample events make.
func (f *flow) expectedDeliveries() int {
	n := 0
	for _, ev := range f.events {
		n += len(matchingSubscriptions(f.subscriptions, ev))
	}
	return n
}

func (f *flow) publishAndSettle() error {
	want := f.expectedDeliveries()
	done := f.p.step("Publishing %d sample events through %s; the receiver prints what it gets:", len(f.events), f.src.describe())
	if err := f.src.publish(f.ctx, f.events); err != nil {
		return err
	}
	var list hookpostv1.WebhookDeliveryList
	err := poll(f.ctx, settleTimeout, func() (bool, error) {
		if err := f.operatorAlive(); err != nil {
			return false, err
		}
		if err := f.cp.Client.List(f.ctx, &list, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		if len(list.Items) < want || len(f.rcv.Accepted()) < want {
			return false, nil
		}
		for _, d := range list.Items {
			if !d.Status.Phase.Finished() {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %d deliveries to settle (%d exist, the receiver accepted %d): %w", want, len(list.Items), len(f.rcv.Accepted()), err)
	}
	phases := map[hookpostv1.DeliveryPhase]int{}
	retried := ""
	for _, d := range list.Items {
		phases[d.Status.Phase]++
		if d.Status.Attempts > 1 {
			retried += fmt.Sprintf("; %s %s %s after %d attempts", d.Spec.SubscriptionName, d.Spec.Event.Type, strings.ToLower(string(d.Status.Phase)), d.Status.Attempts)
		}
	}
	done(fmt.Sprintf("%d deliveries settled, %d Succeeded, %d Failed%s", len(list.Items), phases[hookpostv1.DeliverySucceeded], phases[hookpostv1.DeliveryFailed], retried))
	return nil
}

func (f *flow) operatorAlive() error {
	if syscall.Kill(f.operatorPid, 0) != nil {
		return fmt.Errorf("the operator exited")
	}
	return nil
}

// printTable shows the subscriptions and deliveries as a user would see them: kubectl's own table, or, without
// kubectl, the same columns read through the client.
func (f *flow) printTable() {
	f.p.say("▸ kubectl get webhooksubscriptions,webhookdeliveries")
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		cmd := exec.CommandContext(f.ctx, kubectl, "--kubeconfig", f.cp.KubeconfigPath, "-n", namespace, "get", "webhooksubscriptions,webhookdeliveries")
		out, err := cmd.CombinedOutput()
		if err == nil {
			f.p.say("%s", strings.TrimRight(string(out), "\n"))
			return
		}
		f.p.say("  (kubectl failed: %v; showing the objects through the API instead)", err)
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 8, 3, ' ', 0)
	var subs hookpostv1.WebhookSubscriptionList
	var dels hookpostv1.WebhookDeliveryList
	if err := f.cp.Client.List(f.ctx, &subs, client.InNamespace(namespace)); err == nil {
		fmt.Fprintln(w, "NAME\tURL\tREADY\tDELIVERED\tFAILED")
		for _, s := range subs.Items {
			ready := apimeta.FindStatusCondition(s.Status.Conditions, hookpostv1.ConditionReady)
			status := "Unknown"
			if ready != nil {
				status = string(ready.Status)
			}
			fmt.Fprintf(w, "webhooksubscription/%s\t%s\t%s\t%d\t%d\n", s.Name, s.Spec.URL, status, s.Status.Delivered, s.Status.Failed)
		}
		fmt.Fprintln(w, "\t\t\t\t")
	}
	if err := f.cp.Client.List(f.ctx, &dels, client.InNamespace(namespace)); err == nil {
		fmt.Fprintln(w, "NAME\tSUBSCRIPTION\tEVENT\tPHASE\tATTEMPTS\tCODE")
		for _, d := range dels.Items {
			code := int32(0)
			if d.Status.LastAttempt != nil {
				code = d.Status.LastAttempt.StatusCode
			}
			fmt.Fprintf(w, "webhookdelivery/%s\t%s\t%s\t%s\t%d\t%d\n", d.Name, d.Spec.SubscriptionName, d.Spec.Event.Type, d.Status.Phase, d.Status.Attempts, code)
		}
	}
	_ = w.Flush()
	f.p.say("%s", strings.TrimRight(b.String(), "\n"))
}

func (f *flow) printNextSteps(root string, exitAfterSettle bool) {
	plugin := filepath.Join(root, "bin", "kubectl-hookpost")
	pluginNote := ""
	if !isFile(plugin) {
		pluginNote = "   # `make build` builds it"
	}
	plugin = relativeToCwd(plugin)
	f.p.say("")
	f.p.say("Try next, in another terminal (the receiver here prints what it gets):")
	f.p.say("  export KUBECONFIG=%s", f.cp.KubeconfigPath)
	f.p.say("  kubectl get whdel -o wide")
	f.p.say("  kubectl describe whsub flaky-endpoint")
	f.p.say("  %s test urban-things --event order.created --tenant 123 --wait%s", plugin, pluginNote)
	f.p.say("  %s replay --subscription standard-webhooks", plugin)
	if exitAfterSettle {
		f.p.say("(%s is set: stopping now.)", envExitAfterSettle)
		return
	}
	f.p.say("Press Ctrl-C to stop the demo; it stops everything it started.")
	_ = os.Stdout.Sync()
}
