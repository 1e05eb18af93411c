// Command typed links clientcmd and client-go's typed core/v1 client, which
// pulls in client-go's all-groups scheme.
package main

import (
	"fmt"
	"os"

	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	if len(os.Args) > 1 {
		cfg, err := clientcmd.BuildConfigFromFlags("", os.Args[1])
		if err != nil {
			fmt.Println(err)
			return
		}
		c, err := corev1client.NewForConfig(cfg)
		fmt.Println(c, err)
	}
}
