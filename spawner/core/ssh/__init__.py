"""SSH: public keys and password hashes (validation), the ports and ~/.ssh/config users need."""
