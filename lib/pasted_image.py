"""A pasted image URL, checked the moment it is pasted: reachable, an image, within kling-v3's limits.

Why on the server and before any spend: the gateway fetches the URL only after a run is paid for, and a
web page or a dead link then fails the run ("could not download the first frame image"). Fetching it once
here, through the guarded fetcher (lib.safe_fetch: no private or local address except the gateway's own
origin, capped size and time), turns that into words next to the field while nothing has been sent.

What the words may say: a refused, unreachable or erroring address gets one neutral sentence whatever
the network answered, so the box cannot be used to probe which hosts or ports exist. Only an address
that answered 200 is described further (a web page, too big, not an image, the contract's image rules).
"""
from __future__ import annotations

from lib.contract import MAX_IMAGE_BYTES, MAX_IMAGE_MB, Problem, check_image
from lib.safe_fetch import FetchError, SafeFetcher, url_problem

CHECK_SECONDS = 10.0  # the whole check, redirects and body included; a slow host is not worth the wait
_WEB_PAGE_TYPES = ("text/html", "application/xhtml+xml")


def unreachable(label: str) -> str:
    """The one sentence for any address that could not be downloaded from here."""
    return (f"The {label} URL could not be downloaded from here. Check that it opens as an image in a "
            "browser and is public (https), or upload the file instead.")


def quick_fetcher(fetcher: SafeFetcher) -> SafeFetcher:
    """The archive's fetcher (the same address policy) with a pasted image's shorter time caps."""
    return SafeFetcher(fetcher.policy, connect_timeout=3.0, read_timeout=5.0, total_timeout=CHECK_SECONDS,
                       resolver=fetcher.resolver, ca_certs=fetcher.ca_certs)


def check_url(fetcher: SafeFetcher, url: str, field: str = "first_frame") -> list[Problem]:
    """Problems of the image at `url` (warnings included); [] when kling-v3 can use it as it is."""
    label = field.replace("_", " ")
    shape = url_problem(url)
    if shape is not None:
        return [Problem(field, f"The {label} URL {shape} — paste the image's full https:// address.")]
    try:
        with fetcher.open(url, max_bytes=MAX_IMAGE_BYTES, total_timeout=CHECK_SECONDS) as resp:
            kind = resp.content_type
            if kind in _WEB_PAGE_TYPES or kind.startswith("text/"):
                return [Problem(field, f"The {label} URL leads to a web page ({kind}), not an image — "
                                       "copy the image's own address (right-click the image, Copy image "
                                       "address) or upload the file.")]
            data = resp.read()
    except FetchError as err:
        if err.code == "too_large":
            return [Problem(field, f"The {label} at that URL is larger than {MAX_IMAGE_MB} MB — use a "
                                   "smaller image (a JPEG at quality 85 is usually far smaller).")]
        return [Problem(field, unreachable(label))]
    return check_image(data, field)
