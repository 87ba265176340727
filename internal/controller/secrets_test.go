package controller

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/test/fixtures"
)

var _ = Describe("Secrets", func() {
	It("reads a Secret's data once per change and follows updates and deletion", func() {
		ctx := context.Background()
		ns := newNamespace()
		key := types.NamespacedName{Namespace: ns, Name: "s"}
		Expect(k8sClient.Create(ctx, fixtures.SigningSecret(ns, "s", map[string]string{"secret": "one"}))).To(Succeed())

		var first *corev1.Secret
		Eventually(func() error {
			var err error
			first, err = testSecrets.Get(ctx, key)
			return err
		}).Should(Succeed())
		Expect(string(first.Data["secret"])).To(Equal("one"))
		again, err := testSecrets.Get(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(again).To(BeIdenticalTo(first), "an unchanged Secret is not read from the API server again")

		updated := first.DeepCopy()
		updated.Data = map[string][]byte{"secret": []byte("two")}
		Expect(k8sClient.Update(ctx, updated)).To(Succeed())
		Eventually(func() string {
			s, err := testSecrets.Get(ctx, key)
			Expect(err).NotTo(HaveOccurred())
			return string(s.Data["secret"])
		}).Should(Equal("two"))

		Expect(k8sClient.Delete(ctx, updated)).To(Succeed())
		Eventually(func() bool {
			_, err := testSecrets.Get(ctx, key)
			return apierrors.IsNotFound(err)
		}).Should(BeTrue())
	})

	It("keeps only Secrets labelled for Hookpost in the manager's cache, and tells an unlabelled one from a missing one", func() {
		ctx := context.Background()
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unrelated",
			Annotations: map[string]string{annotationLastApplied: `{"stringData":{"password":"hunter2"}}`}},
			StringData: map[string]string{"password": "hunter2"}})).To(Succeed())
		Expect(k8sClient.Create(ctx, fixtures.SigningSecret(ns, "signing", map[string]string{"secret": "x"}))).To(Succeed())

		cachedNames := func() []string {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
			Expect(managerCache.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			var names []string
			for _, m := range list.Items {
				names = append(names, m.Name)
			}
			return names
		}
		Eventually(cachedNames).Should(ContainElement("signing"))
		Consistently(cachedNames, "1s").ShouldNot(ContainElement("unrelated"), "an unrelated Secret (and its last-applied-configuration) is never in the operator's memory")

		all := &metav1.PartialObjectMetadataList{}
		all.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
		Expect(managerCache.List(ctx, all)).To(Succeed())
		for _, m := range all.Items {
			Expect(m.Labels).To(HaveKeyWithValue(hookpostv1.LabelSigningSecret, "true"), "cached Secret %s/%s", m.Namespace, m.Name)
		}

		_, err := testSecrets.Get(ctx, types.NamespacedName{Namespace: ns, Name: "unrelated"})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "an unlabelled Secret is not read, even when asked for")
		unlabeled, err := testSecrets.Unlabeled(ctx, types.NamespacedName{Namespace: ns, Name: "unrelated"})
		Expect(err).NotTo(HaveOccurred())
		Expect(unlabeled).To(BeTrue())
		unlabeled, err = testSecrets.Unlabeled(ctx, types.NamespacedName{Namespace: ns, Name: "absent"})
		Expect(err).NotTo(HaveOccurred())
		Expect(unlabeled).To(BeFalse())
	})
})
