// Command clientset links client-go's full Clientset (what the plugin avoids).
package main

import (
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	if len(os.Args) > 1 {
		cfg, err := clientcmd.BuildConfigFromFlags("", os.Args[1])
		if err != nil {
			fmt.Println(err)
			return
		}
		c, err := kubernetes.NewForConfig(cfg)
		fmt.Println(c, err)
	}
}
