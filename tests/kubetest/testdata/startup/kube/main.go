// Command kube links pkg/kube (REST client with a core/v1-only scheme).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/userspace-cni/userspace/pkg/kube"
)

func main() {
	if len(os.Args) > 1 {
		c, err := kube.New(os.Args[1], time.Second)
		fmt.Println(c, err)
	}
}
