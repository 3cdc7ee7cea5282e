"""Cross-source dedup: group reprints of one piece of news into one story.

Pure: no network, no database, no clock. The pipeline keeps one `Index` of the articles of
the last `window`, asks it for a `Fingerprint` and a `Decision` for each new article, stores
the fingerprint with the article and adds it to the index, so a restart rebuilds the index
from stored fingerprints without reading a single body.

A new article joins an earlier one when, in this order (the first stage that matches wins):

1. an exact key is shared: canonical URL, a globally unique GUID, the body's `text_hash`;
   or the official document number (发文字号), but only with agreeing titles or bodies;
2. the normalized titles are equal, the title is not generic and the bodies do not disagree;
3. the texts are near-duplicates: MinHash Jaccard >= threshold and the titles do not
   contradict each other.

Only entries published within `window` of the new article are candidates.

The modules, each importing only those listed before it: `data` (constants, stage names,
frozen types), `text` (folding, title keys, document numbers, body lines), `shingles`
(MinHash signatures), `fingerprints` (article -> `Fingerprint`), `stages` (pair judgements),
`lsh` (near-duplicate candidates) and `index` (`Index`); an import-linter contract in
pyproject.toml holds that order. What code outside the package uses is imported here.
"""

from .data import (
    BODIES_DISAGREE,
    BOILERPLATE_REPEATS,
    BUCKET_CAP,
    FULL_BODY,
    MIN_BODY,
    NUM_PERM,
    SIGNATURE_VERSION,
    STAGE_DISABLED,
    STAGE_DOC,
    STAGE_GUID,
    STAGE_NEAR,
    STAGE_NEW,
    STAGE_TEXT,
    STAGE_TITLE,
    STAGE_URL,
    TEMPLATE_SHARE,
    TITLE_AGREES,
    TITLES_UNRELATED,
    Decision,
    Entry,
    Fingerprint,
    Verdict,
)
from .fingerprints import Prepared, fingerprint, prepare
from .index import Index
from .lsh import lsh_shape
from .shingles import make_signature, minhash, shingle_hashes
from .stages import (
    arrange,
    bodies_disagree,
    body_similarity,
    compare,
    is_global_guid,
    match_doc_number,
    match_exact,
    match_near_duplicate,
    match_title,
    title_numbers,
    title_similarity,
    titles_contradict,
)
from .text import (
    body_text,
    content_lines,
    doc_number,
    fold,
    is_generic_title,
    line_key,
    normalize_title,
    strip_title_affixes,
)

__all__ = [
    "BODIES_DISAGREE",
    "BOILERPLATE_REPEATS",
    "BUCKET_CAP",
    "FULL_BODY",
    "MIN_BODY",
    "NUM_PERM",
    "SIGNATURE_VERSION",
    "STAGE_DISABLED",
    "STAGE_DOC",
    "STAGE_GUID",
    "STAGE_NEAR",
    "STAGE_NEW",
    "STAGE_TEXT",
    "STAGE_TITLE",
    "STAGE_URL",
    "TEMPLATE_SHARE",
    "TITLES_UNRELATED",
    "TITLE_AGREES",
    "Decision",
    "Entry",
    "Fingerprint",
    "Index",
    "Prepared",
    "Verdict",
    "arrange",
    "bodies_disagree",
    "body_similarity",
    "body_text",
    "compare",
    "content_lines",
    "doc_number",
    "fingerprint",
    "fold",
    "is_generic_title",
    "is_global_guid",
    "line_key",
    "lsh_shape",
    "make_signature",
    "match_doc_number",
    "match_exact",
    "match_near_duplicate",
    "match_title",
    "minhash",
    "normalize_title",
    "prepare",
    "shingle_hashes",
    "strip_title_affixes",
    "title_numbers",
    "title_similarity",
    "titles_contradict",
]
