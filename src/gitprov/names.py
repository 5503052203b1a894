"""Well-known names inside a user's repository (no imports: used on hook paths)."""

#: The repository's own git-prov settings, committed with the code.
SETTINGS_FILE = ".provenance.toml"
#: Where ``prov init`` vendors the lexicon.
LEXICON_DIR = ".provenance-schema"
