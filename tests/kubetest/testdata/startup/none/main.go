// Command none is the start-up baseline: a Go binary without Kubernetes code.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Println(os.Args[1])
	}
}
