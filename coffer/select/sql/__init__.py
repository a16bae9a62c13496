"""The S3 Select SQL dialect: lexer, parser, AST (docs/select.md)."""
