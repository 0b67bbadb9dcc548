// Package localrun runs the operator as a local process against a cluster,
// with exactly the permissions it has when deployed: the manifests of
// config/default are applied (all but the manager's Deployment) and the
// process authenticates with a token of the operator's ServiceAccount.
package localrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"example.com/memcached-operator/test/internal/simcluster"
)

// Install applies the operator's manifests, rendered from manifestsDir (such
// as config/default) by
// kubectl's kustomize, except the manager's Deployment: the CRDs, the
// operator's namespace, ServiceAccount and RBAC. It waits for the CRDs to be
// established and writes to kubeconfigPath a kubeconfig that authenticates as
// the operator's ServiceAccount.
func Install(ctx context.Context, admin *rest.Config, kubectl, manifestsDir, kubeconfigPath string) error {
	objects, err := Render(ctx, kubectl, manifestsDir)
	if err != nil {
		return err
	}
	c, err := installClient(admin)
	if err != nil {
		return err
	}

	var serviceAccount, crds []*unstructured.Unstructured
	for _, obj := range objects {
		switch obj.GetKind() {
		case "Deployment":
			continue // the operator runs as a local process instead
		case "ServiceAccount":
			serviceAccount = append(serviceAccount, obj)
		case "CustomResourceDefinition":
			crds = append(crds, obj)
		}
		if err := apply(ctx, c, obj); err != nil {
			return fmt.Errorf("failed to apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	if len(serviceAccount) != 1 {
		return fmt.Errorf("%s has %d ServiceAccounts, want 1", manifestsDir, len(serviceAccount))
	}
	if err := waitForCRDs(ctx, c, crds); err != nil {
		return err
	}

	return TokenKubeconfig(ctx, admin, serviceAccount[0].GetNamespace(), serviceAccount[0].GetName(), kubeconfigPath)
}

// TokenKubeconfig writes to kubeconfigPath a kubeconfig that authenticates
// with a token of the ServiceAccount namespace/name, as a pod running with
// it would.
func TokenKubeconfig(ctx context.Context, admin *rest.Config, namespace, name, kubeconfigPath string) error {
	clientset, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return fmt.Errorf("failed to create a client: %w", err)
	}
	token, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](24 * 3600)}},
		metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("failed to create a token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	operator := rest.AnonymousClientConfig(admin)
	operator.BearerToken = token.Status.Token
	return simcluster.WriteKubeconfig(kubeconfigPath, operator, namespace+":"+name)
}

// Render runs kubectl kustomize on dir and decodes the objects it prints.
func Render(ctx context.Context, kubectl, dir string) ([]*unstructured.Unstructured, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w: %s", dir, err, stderr.String())
	}
	objects, err := decode(&stdout)
	if err != nil {
		return nil, fmt.Errorf("failed to decode the manifests of %s: %w", dir, err)
	}
	return objects, nil
}

// decode decodes a stream of YAML or JSON documents.
func decode(r io.Reader) ([]*unstructured.Unstructured, error) {
	var objects []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objects, nil
			}
			return nil, err
		}
		if len(obj.Object) > 0 {
			objects = append(objects, obj)
		}
	}
}

// InstallCRDs applies the CustomResourceDefinitions in a YAML file, such as
// another operator's, and waits for them to be established.
func InstallCRDs(ctx context.Context, admin *rest.Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	objects, err := decode(f)
	if err != nil {
		return fmt.Errorf("failed to decode %s: %w", path, err)
	}
	c, err := installClient(admin)
	if err != nil {
		return err
	}
	var crds []*unstructured.Unstructured
	for _, obj := range objects {
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if err := apply(ctx, c, obj); err != nil {
			return fmt.Errorf("failed to apply CRD %s: %w", obj.GetName(), err)
		}
		crds = append(crds, obj)
	}
	if len(crds) == 0 {
		return fmt.Errorf("%s holds no CustomResourceDefinition", path)
	}
	return waitForCRDs(ctx, c, crds)
}

// installClient returns a client of admin that also knows
// CustomResourceDefinitions.
func installClient(admin *rest.Config) (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(admin, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	return c, nil
}

func apply(ctx context.Context, c client.Client, obj *unstructured.Unstructured) error {
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj),
		client.FieldOwner("memcached-operator-install"), client.ForceOwnership)
}

func waitForCRDs(ctx context.Context, c client.Client, crds []*unstructured.Unstructured) error {
	for _, crd := range crds {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			current := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(crd), current); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			for _, cond := range current.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("waiting for CRD %s to be established: %w", crd.GetName(), err)
		}
	}
	return nil
}
