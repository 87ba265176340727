package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/signing"
)

type secretRotateOptions struct {
	*rootOptions
	value string
}

func newSecretRotateCommand(root *rootOptions) *cobra.Command {
	o := &secretRotateOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "rotate SUBSCRIPTION",
		Short: "Rotate a subscription's signing secret, signing with the old and the new one for the overlap",
		Long: `Writes a new signing secret into the subscription's Secret and moves the current one to "<key>.previous", in
one update. Until spec.signing.rotationOverlap (24h unless set) has passed, every request carries both keys'
signatures: the hex HMAC headers stay on the old key and <header>-Next carries the new one; webhook-signature
carries both. Then the old key stops signing by itself. See docs/receivers.md, "Rotating the secret".

The new secret is generated in the form the subscription's schemes need (whsec_<base64> when StandardWebhooks is
among them), unless --value gives one. A rotation still in its overlap is not rotated again: the receivers may
still verify with the key it would drop.`,
		Example: `  kubectl hookpost secret rotate orders
  export WEBHOOK_SECRET_NEXT="$(kubectl hookpost secret orders)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args[0]) },
	}
	cmd.Flags().StringVar(&o.value, "value", "", "the new secret, instead of a generated one")
	return cmd
}

func (o *secretRotateOptions) run(ctx context.Context, subscription string) error {
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
	if keys.Previous != "" {
		return fmt.Errorf("subscription %s is rotating already: the previous secret %s still signs%s; rotate again once it has expired (see status.signingKeys)",
			sub.Name, signing.Fingerprint(keys.Previous), expiryOf(sub, signing.Fingerprint(keys.Previous)))
	}
	scheme := signing.SecretScheme(controller.SignaturesOf(sub.Spec.Signing))
	value := o.value
	if value == "" {
		if value, err = signing.GenerateSecret(scheme); err != nil {
			return err
		}
	}
	if _, err := signing.Key(scheme, value); err != nil {
		return fmt.Errorf("--value cannot sign with scheme %s: %w", scheme, err)
	}
	if value == keys.Current {
		return fmt.Errorf("--value is the secret in use; give a new one")
	}
	ref := sub.Status.SigningSecretRef
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, s); err != nil {
		return fmt.Errorf("get signing Secret %s/%s: %w", ns, ref.Name, err)
	}
	// The Secret's resourceVersion makes this update fail rather than overwrite a change made meanwhile.
	s.Data[ref.Key+hookpostv1.PreviousKeySuffix] = []byte(keys.Current)
	s.Data[ref.Key] = []byte(value)
	if err := c.Update(ctx, s); err != nil {
		return fmt.Errorf("update signing Secret %s/%s: %w", ns, ref.Name, err)
	}
	overlap := hookpostv1.DefaultRotationOverlap
	if d := sub.Spec.Signing.RotationOverlap; d != nil {
		overlap = d.Duration
	}
	fmt.Fprintf(o.streams.Out, "Rotated the signing secret of %s: %s signs now, and %s keeps signing for %s (spec.signing.rotationOverlap).\n",
		sub.Name, signing.Fingerprint(value), signing.Fingerprint(keys.Current), overlap)
	fmt.Fprintf(o.streams.Out, "Give receivers the new secret (kubectl hookpost secret %s) before then; docs/receivers.md says how.\n", sub.Name)
	return nil
}

// expiryOf is " until <time>" for the key with id in the subscription's status.signingKeys, "" when not recorded yet.
func expiryOf(sub *hookpostv1.WebhookSubscription, id string) string {
	for _, k := range sub.Status.SigningKeys {
		if k.ID == id && k.ExpiresAt != nil {
			return " until " + k.ExpiresAt.UTC().Format(time.RFC3339)
		}
	}
	return ""
}
