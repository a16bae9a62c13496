"""Access control: the IAM policy language (policy.py), and later ACLs and ownership."""
