"""Demo data for ``tracseq dev --demo``: realistic sequencing-lab templates, sample sheets
and events, loaded through the gateway with the typed client (so it exercises the stack
end to end)."""

from __future__ import annotations

import time
from typing import Any

from tracseq_kit._exceptions import NotFoundError
from tracseq_kit.client import TracSeqClient

__all__ = ["TEMPLATES", "load_demo"]

_SAMPLE_ID = {
    "name": "sample_id",
    "label": "Sample ID",
    "type": "barcode",
    "required": True,
    "barcode_pattern": "[A-Z]{2}-[0-9]{6}",
    "rules": {"unique": True},
}

TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "Illumina RNA-seq submission",
        "description": "Total RNA for short-read RNA-seq (poly-A or rRNA depletion).",
        "category": "submission",
        "tags": ["rna-seq", "illumina"],
        "fields": [
            _SAMPLE_ID,
            {
                "name": "organism",
                "type": "enum",
                "required": True,
                "options": ["Homo sapiens", "Mus musculus", "Danio rerio", "other"],
            },
            {"name": "tissue", "type": "text", "rules": {"max_length": 80}},
            {
                "name": "concentration_ng_ul",
                "label": "Concentration",
                "type": "decimal",
                "unit": "ng/uL",
                "required": True,
                "rules": {"min_value": "5"},
            },
            {
                "name": "volume_ul",
                "label": "Volume",
                "type": "decimal",
                "unit": "uL",
                "required": True,
                "rules": {"min_value": "10", "max_value": "200"},
            },
            {
                "name": "rin",
                "label": "RIN",
                "type": "decimal",
                "rules": {"min_value": "1", "max_value": "10"},
            },
            {
                "name": "library_prep",
                "type": "enum",
                "required": True,
                "options": ["poly-A", "rRNA depletion"],
            },
            {"name": "collected_on", "type": "date"},
        ],
    },
    {
        "name": "Whole-genome sequencing DNA submission",
        "description": "Genomic DNA for 30x PCR-free whole-genome sequencing.",
        "category": "submission",
        "tags": ["wgs", "dna"],
        "fields": [
            _SAMPLE_ID,
            {
                "name": "concentration_ng_ul",
                "type": "decimal",
                "unit": "ng/uL",
                "required": True,
                "rules": {"min_value": "20"},
            },
            {
                "name": "a260_280",
                "label": "A260/280",
                "type": "decimal",
                "rules": {"min_value": "1.7", "max_value": "2.1"},
            },
            {"name": "volume_ul", "type": "decimal", "unit": "uL", "required": True},
            {"name": "sex", "type": "enum", "options": ["female", "male", "unknown"]},
            {"name": "consent", "type": "boolean", "required": True},
            {"name": "contact", "type": "email"},
        ],
        "cross_field_rules": [
            {"when_field": "consent", "equals": ["false"], "then_required": ["contact"]}
        ],
    },
    {
        "name": "Library QC report",
        "description": "Fragment size and molarity of pooled libraries before loading.",
        "category": "qc",
        "tags": ["qc", "library"],
        "fields": [
            {"name": "library_id", "type": "text", "required": True, "rules": {"unique": True}},
            {"name": "fragment_bp", "type": "integer", "rules": {"min_value": "150"}},
            {"name": "molarity_nm", "type": "decimal", "unit": "nM", "required": True},
            {"name": "passed", "type": "boolean", "required": True},
        ],
    },
]

_RNA_SHEET = (
    "sample_id,organism,tissue,concentration_ng_ul,volume_ul,rin,library_prep,collected_on\n"
    "RN-000101,Homo sapiens,liver,85.2,40,8.9,poly-A,2026-11-02\n"
    "RN-000102,Homo sapiens,liver,61.0,40,8.1,poly-A,2026-11-02\n"
    "RN-000103,Mus musculus,brain,120.5,35,9.4,rRNA depletion,2026-11-03\n"
    "RN-000104,Mus musculus,brain,44.8,35,7.2,rRNA depletion,2026-11-03\n"
)
_WGS_SHEET_WITH_PROBLEMS = (
    "sample_id,concentration_ng_ul,a260_280,volume_ul,sex,consent,contact\n"
    "WG-000201,55,1.85,50,female,true,\n"
    "WG-000202,12,1.80,50,male,true,\n"  # too dilute
    "wg-203,48,2.40,50,unknown,false,\n"  # bad barcode, ratio out of range, no contact
)


def load_demo(base_url: str) -> str:
    """Create and publish the demo templates, validate two sheets, publish two events.

    Returns a one-line summary. Raises the client's :class:`~tracseq_kit.APIError`s.
    """
    with TracSeqClient(base_url) as client:
        created = [client.templates.publish(client.templates.create(t).id) for t in TEMPLATES]
        rna, wgs = created[0], created[1]
        good = client.templates.validate_submission(rna.id, _RNA_SHEET.encode())
        bad = client.templates.validate_submission(wgs.id, _WGS_SHEET_WITH_PROBLEMS.encode())
        for plate, wells in (("PL-0042", 96), ("PL-0043", 48)):
            last = client.events.publish(
                type="tracseq.sample.received",
                source="/lab/reception",
                subject=plate,
                data={"plate": plate, "wells": wells, "template": rna.id},
            )
        stored = _wait_until_stored(client, last.id)
    return (
        f"{len(created)} templates published, 2 sheets validated "
        f"({good.rows_checked} rows valid, {len(bad.problems)} problems found), 2 events"
        + ("" if stored else " (still on their way to the event service)")
    )


def _wait_until_stored(client: TracSeqClient, event_id: str, timeout: float = 60.0) -> bool:
    """Wait until the event service stored ``event_id`` (Kafka, then its consumer), so
    that ``ready`` means the demo data can be queried."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.events.get(event_id)
            return True
        except NotFoundError:
            time.sleep(0.5)
    return False
