"""The ingest function's settings: environment variables with the `ATHENAEUM_` prefix, which the
stack sets (infra/ingest) and docs/settings.md documents. Read once per container through
`get_ingest_settings`; a bad value stops the run with a message naming the variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from athenaeum.storage.published import KEEP_VERSIONS

DEFAULT_WORK_DIR = Path("/tmp/athenaeum-ingest")  # noqa: S108 (Lambda's only writable place)
# One PDF is converted and embedded within one invocation (15 minutes): a file of this many
# pages fits with room to spare even on slow vCPUs (docs/benchmarks.md, "The living library");
# a larger one is refused by name.
DEFAULT_MAX_PAGES = 2000


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ATHENAEUM_", env_file=None, extra="ignore", frozen=True
    )

    # The library people add documents to, and the published index the function writes.
    library_s3_uri: str
    index_s3_uri: str
    # Downloads, conversions and the local copy of the index, kept while the container is warm.
    ingest_work_dir: Path = DEFAULT_WORK_DIR
    # A Secrets Manager secret (name or ARN) with passwords for encrypted PDFs and Office files.
    ingest_passwords_secret: str | None = None
    # PDFs with more pages are refused in the report; 0: no limit.
    ingest_max_pages: int = Field(default=DEFAULT_MAX_PAGES, ge=0)
    # The function's own queue: a run that had to stop early asks there for another.
    ingest_queue_url: str | None = None
    # Published versions kept after each publish (athenaeum.storage.published.PublishedIndex.prune).
    ingest_keep_versions: int = Field(default=KEEP_VERSIONS, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # A variable set to "" or spaces means "not set", as it did before these were a class.
        if not isinstance(data, dict):
            return data
        return {
            key: value.strip() if isinstance(value, str) else value
            for key, value in data.items()
            if not (isinstance(value, str) and not value.strip())
        }

    @field_validator("library_s3_uri", "index_s3_uri")
    @classmethod
    def _s3_uri(cls, value: str) -> str:
        if not value.startswith("s3://") or len(value) <= len("s3://"):
            raise ValueError(f"must look like s3://bucket/prefix, got {value!r}")
        return value

    @property
    def max_pages(self) -> int | None:
        return self.ingest_max_pages or None


class IngestSettingsError(RuntimeError):
    """The function's environment is missing a setting or has a bad value."""


@lru_cache(maxsize=1)
def get_ingest_settings() -> IngestSettings:
    try:
        # The required fields come from the environment, which mypy cannot see.
        return IngestSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(
            f"ATHENAEUM_{'_'.join(map(str, error['loc'])).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise IngestSettingsError(f"the ingest function's settings: {problems}") from None
