package docker

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"nimbus/internal/function"
)

// Prepare makes sure the function's image is on the engine, pulling it if
// not. A failed pull returns the registry's message.
func (d *Driver) Prepare(ctx context.Context, fn function.Function) error {
	_, err := d.userFor(ctx, fn.Image)
	return err
}

// userFor returns the user a container of image runs as, pulling the image
// first if the engine lacks it: the image's own USER if it names one, else
// the driver's unprivileged default.
func (d *Driver) userFor(ctx context.Context, image string) (string, error) {
	if u, ok := d.users.Load(image); ok {
		return u.(string), nil
	}
	res, err := d.cli.ImageInspect(ctx, image)
	if cerrdefs.IsNotFound(err) {
		if err := d.pull(ctx, image); err != nil {
			return "", err
		}
		res, err = d.cli.ImageInspect(ctx, image)
	}
	if err != nil {
		return "", fmt.Errorf("docker: inspect image %s: %w", image, err)
	}
	user := d.opts.User
	if res.Config != nil && strings.TrimSpace(res.Config.User) != "" {
		user = res.Config.User
	}
	d.users.Store(image, user)
	return user, nil
}

func (d *Driver) pull(ctx context.Context, image string) error {
	resp, err := d.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return fmt.Errorf("pull %s: %w", image, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("pull %s: %s", image, msg.Error.Message)
		}
	}
	return nil
}
