"""Who someone is, compared the way people mean it.

An identity (an API key's name, an approver, a proposer) is compared after Unicode NFKC, case
folding and trimming, so ``alice``, ``ALICE`` and ``" Alice "`` are one person and a look-alike in
full-width letters is the same person too. Every rule that counts distinct people (two approvers,
"the proposer cannot approve") compares ``same_identity`` or ``identity_key``, never raw strings.
"""

from __future__ import annotations

import unicodedata


def identity_key(name: str) -> str:
    """The form two names are compared in: NFKC, casefolded, inner whitespace collapsed, trimmed."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return " ".join(folded.split())


def same_identity(a: str, b: str) -> bool:
    return identity_key(a) == identity_key(b)


def distinct_identities(names: list[str] | tuple[str, ...]) -> int:
    """How many different people ``names`` are."""
    return len({identity_key(n) for n in names})
