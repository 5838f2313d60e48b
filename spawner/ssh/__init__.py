"""SSH into the user's own container: keys, passwords, the access page, the proxy client."""
