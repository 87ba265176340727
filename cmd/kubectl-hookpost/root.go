package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// rootOptions are what every command shares: the streams and kubectl's connection flags (--kubeconfig,
// --context, -n and the rest), so the plugin talks to the cluster exactly as kubectl would.
type rootOptions struct {
	streams genericiooptions.IOStreams
	config  *genericclioptions.ConfigFlags
}

func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &rootOptions{streams: streams, config: genericclioptions.NewConfigFlags(true)}
	cmd := &cobra.Command{
		Use:   "kubectl-hookpost",
		Short: "Test, replay, inspect and verify Hookpost webhooks",
		Long: `kubectl hookpost works with Hookpost's WebhookSubscriptions, WebhookDeliveries and WebhookReplays: send a
test event, replay deliveries (one, or in bulk through a WebhookReplay), list and export dead letters, show
the exact request a receiver gets, publish an event into a source, verify a signature as a receiver would,
and print a subscription's signing secret.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl hookpost"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	o.config.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newTestCommand(o),
		newReplayCommand(o),
		newInspectCommand(o),
		newPublishCommand(o),
		newVerifyCommand(o),
		newSecretCommand(o),
		newHistoryCommand(o),
		newDeadLettersCommand(o),
	)
	return cmd
}

// scheme knows the kinds the plugin reads and writes.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := hookpostv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// client connects to the cluster the kubeconfig flags select. Reads go straight to the API server: a one-shot
// command has no cache to warm.
func (o *rootOptions) client() (client.Client, error) {
	cfg, err := o.config.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	return c, nil
}

// connect returns a client and the namespace to work in.
func (o *rootOptions) connect() (client.Client, string, error) {
	c, err := o.client()
	if err != nil {
		return nil, "", err
	}
	ns, err := o.namespace()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// getSubscription reads a subscription, with an error that names it.
func getSubscription(ctx context.Context, c client.Client, ns, name string) (*hookpostv1.WebhookSubscription, error) {
	sub := &hookpostv1.WebhookSubscription{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sub); err != nil {
		return nil, fmt.Errorf("get WebhookSubscription %s/%s: %w", ns, name, err)
	}
	return sub, nil
}

// namespace is -n, else the kubeconfig context's namespace, else "default".
func (o *rootOptions) namespace() (string, error) {
	ns, _, err := o.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("resolve the namespace: %w", err)
	}
	return ns, nil
}

// addOutputFlag adds kubectl's -o for the formats a command supports besides its human-readable default: json,
// yaml and the command's extra ones (such as wide).
func addOutputFlag(cmd *cobra.Command, output *string, extra ...string) {
	cmd.Flags().StringVarP(output, "output", "o", "", "Output format: "+outputFormats(extra)+". Default is human-readable text.")
}

// validateOutput says which formats to use when output is not one addOutputFlag offered.
func validateOutput(output string, extra ...string) error {
	if output == "" || output == "json" || output == "yaml" || slices.Contains(extra, output) {
		return nil
	}
	return fmt.Errorf("--output %q is not supported: use %s", output, outputFormats(extra))
}

func outputFormats(extra []string) string {
	formats := append([]string{"json", "yaml"}, extra...)
	return strings.Join(formats[:len(formats)-1], ", ") + " or " + formats[len(formats)-1]
}

// printStructured writes v as JSON (indented like kubectl) or YAML with every non-printing character escaped, so
// -o json or yaml on a terminal is as safe as the table, and still reads back to the exact strings.
// encoding/json escapes C0 controls but leaves DEL, C1 controls (such as CSI) and format characters raw, and
// YAML refuses DEL and C1 in its input: both are given JSON escapes first, which the YAML encoder then writes
// as its own escapes.
func printStructured(w io.Writer, output string, v any) error {
	if output != "json" && output != "yaml" {
		return validateOutput(output)
	}
	if obj, ok := v.(runtime.Object); ok {
		// The typed client leaves apiVersion and kind empty; kubectl prints them.
		if gvk, err := apiutil.GVKForObject(obj, scheme); err == nil {
			obj.GetObjectKind().SetGroupVersionKind(gvk)
		}
	}
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", output, err)
	}
	b = append(escapeNonPrinting(b), '\n')
	if output == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
	}
	_, err = w.Write(b)
	return err
}
