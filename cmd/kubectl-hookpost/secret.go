package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/signing"
)

type secretOptions struct {
	*rootOptions
	output string
}

func newSecretCommand(root *rootOptions) *cobra.Command {
	o := &secretOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "secret SUBSCRIPTION",
		Short: "Print the signing secret a subscription signs with",
		Long: `Prints the signing secret in use for the subscription (the Secret named in its status.signingSecretRef),
whether Hookpost generated it or you supplied it, so you can configure your receiver with it. During a rotation
(kubectl hookpost secret rotate) it prints the new secret; -o json adds the previous one and both ids.`,
		Example: `  kubectl hookpost secret orders
  export WEBHOOK_SECRET="$(kubectl hookpost secret orders)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args[0]) },
	}
	addOutputFlag(cmd, &o.output)
	cmd.AddCommand(newSecretRotateCommand(root))
	return cmd
}

// secretOutput is secret's -o form.
type secretOutput struct {
	Subscription string                   `json:"subscription"`
	Scheme       hookpostv1.SigningScheme `json:"scheme"`
	// AdditionalSchemes are those of spec.signing.additional: the one secret keys them too.
	AdditionalSchemes []hookpostv1.SigningScheme `json:"additionalSchemes,omitempty"`
	SecretRef         hookpostv1.SecretKeyRef    `json:"secretRef"`
	Secret            string                     `json:"secret"`
	// ID is the secret's id in status.signingKeys.
	ID string `json:"id"`
	// Previous is the previous secret while a rotation's overlap lasts (it still signs), with its id.
	Previous   string `json:"previous,omitempty"`
	PreviousID string `json:"previousId,omitempty"`
}

func (o *secretOptions) run(ctx context.Context, subscription string) error {
	if err := validateOutput(o.output); err != nil {
		return err
	}
	c, ns, err := o.connect()
	if err != nil {
		return err
	}
	sub, err := getSubscription(ctx, c, ns, subscription)
	if err != nil {
		return err
	}
	keys, err := signingKeys(ctx, c, sub, time.Now())
	if err != nil {
		return err
	}
	if o.output == "" {
		fmt.Fprintln(o.streams.Out, keys.Current)
		return nil
	}
	out := secretOutput{
		Subscription: sub.Name,
		Scheme:       sub.Spec.Signing.Scheme,
		SecretRef:    *sub.Status.SigningSecretRef,
		Secret:       keys.Current,
		ID:           signing.Fingerprint(keys.Current),
		Previous:     keys.Previous,
	}
	if keys.Previous != "" {
		out.PreviousID = signing.Fingerprint(keys.Previous)
	}
	for _, a := range sub.Spec.Signing.Additional {
		out.AdditionalSchemes = append(out.AdditionalSchemes, a.Scheme)
	}
	return printStructured(o.streams.Out, o.output, out)
}

// signingKeys reads the keys the subscription signs with at now from the Secret its status names, as the
// delivery controller does (controller.KeysFor), and says why when there is none yet.
func signingKeys(ctx context.Context, c client.Client, sub *hookpostv1.WebhookSubscription, now time.Time) (signing.Keys, error) {
	ref := sub.Status.SigningSecretRef
	if ref == nil {
		why := "Hookpost has not resolved it yet"
		if cond := meta.FindStatusCondition(sub.Status.Conditions, hookpostv1.ConditionReady); cond != nil && cond.Status != "True" {
			why = cond.Reason + ": " + cond.Message
		}
		return signing.Keys{}, fmt.Errorf("subscription %s has no signing secret in status.signingSecretRef (%s)", sub.Name, why)
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: sub.Namespace, Name: ref.Name}, s); err != nil {
		return signing.Keys{}, fmt.Errorf("get signing Secret %s/%s of subscription %s: %w", sub.Namespace, ref.Name, sub.Name, err)
	}
	keys := controller.KeysFor(sub.Status.SigningKeys, s.Data, ref.Key, now)
	if keys.Current == "" {
		return signing.Keys{}, fmt.Errorf("signing Secret %s/%s has no data under key %q", sub.Namespace, ref.Name, ref.Key)
	}
	return keys, nil
}

func orDefault[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}
