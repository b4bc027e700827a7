"""The official GroupLens MovieLens data sets (:data:`DATASETS`): for each, its zip, the folder
inside it, the files it must hold and its published checksums; and :class:`FetchError`, raised
when a data set cannot be found, downloaded, verified or unpacked."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATASETS", "DatasetInfo", "FetchError", "dataset_info"]


class FetchError(RuntimeError):
    """A data set could not be found, downloaded, verified or unpacked; the message says what to do."""


@dataclass(frozen=True)
class DatasetInfo:
    """One official GroupLens MovieLens data set.

    Attributes
    ----------
    name : str
        The name users type, e.g. ``"ml-latest-small"``.
    zip_name : str
        File name of the official zip, e.g. ``"ml-10m.zip"``.
    folder : str
        The single top-level folder inside the zip, e.g. ``"ml-10M100K"``.
    required : tuple of str
        Files (relative to ``folder``) that must be in the archive.
    md5 : str or None
        Published md5 of the zip (GroupLens serves it as ``<zip>.md5``); ``None``
        where unknown or where the file changes over time (then the ``.md5``
        served beside the zip is used at download time).
    sha256 : str or None
        sha256 of the zip where known.
    size : int or None
        Size of the zip in bytes where known (only used in messages).
    """

    name: str
    zip_name: str
    folder: str
    required: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None

    def url(self, base_url: str) -> str:
        """Download address of the zip under ``base_url``."""
        return base_url.rstrip("/") + "/" + self.zip_name

    def matches(self, md5: str, sha256: str) -> bool:
        """Whether a zip with these digests is this data set (``False`` if no checksum is known)."""
        known = [(self.md5, md5), (self.sha256, sha256)]
        return any(want is not None for want, _ in known) and all(
            want is None or want == got for want, got in known
        )


_CSV = ("ratings.csv", "movies.csv")
_DAT = ("ratings.dat", "movies.dat")

#: The official data sets, by name. The md5s are the ones GroupLens publishes in
#: ``<zip>.md5``; ml-32m and ml-latest have none recorded here (ml-latest is
#: rebuilt from time to time), so the served ``.md5`` is used for them.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "ml-100k", "ml-100k.zip", "ml-100k", ("u.data", "u.item"), md5="0e33842e24a9c977be4e0107933c0723"
        ),
        DatasetInfo("ml-1m", "ml-1m.zip", "ml-1m", _DAT, md5="c4d9eecfca2ab87c1945afe126590906"),
        DatasetInfo("ml-10m", "ml-10m.zip", "ml-10M100K", _DAT, md5="ce571fd55effeba0271552578f2648bd"),
        DatasetInfo("ml-20m", "ml-20m.zip", "ml-20m", _CSV, md5="cd245b17a1ae2cc31bb14903e1204af3"),
        DatasetInfo("ml-25m", "ml-25m.zip", "ml-25m", _CSV, md5="6b51fb2759a8657d3bfcbfc42b592ada"),
        DatasetInfo("ml-32m", "ml-32m.zip", "ml-32m", _CSV),
        DatasetInfo(
            "ml-latest-small",
            "ml-latest-small.zip",
            "ml-latest-small",
            _CSV,
            md5="31a303aabbc519bd33d025e44d6c2570",
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            size=978_202,
        ),
        DatasetInfo("ml-latest", "ml-latest.zip", "ml-latest", _CSV),
    ]
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name``; :class:`FetchError` listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise FetchError(
            f"unknown MovieLens data set {name!r}; known data sets are: {known} "
            "(or give the path of an unpacked folder or of a .zip)"
        ) from None
