"""Sample photos for demos, notebooks and your own tests, made from two public-domain portraits.

:func:`sample_photos` writes a small, ready set of JPEG files into a folder: five training photos
of each of two people (the NASA astronaut Eileen Collins and Rear Admiral Grace Hopper, varied by
flipping, cropping, brightening and rotating), and three templates, one of them a two-face group
picture. Serve the folder and pass the URLs to a session, for instance with the local emulator::

    from aiportrait.emulator import Emulator
    from aiportrait.samples import sample_photos

    photos = sample_photos("photos")                       # writes 13 JPEG files
    async with Emulator(serve_dir=photos.folder) as emu, emu.session() as session:
        report = await session.check_images([emu.media_url(n) for n in photos.astronaut])
        job = await session.train(report.passed)
        ...
        portrait = await session.create(model_id, emu.media_url(photos.group_template))

The files are the same on every call (deterministic), so tests can compare results. Needs Pillow,
which ``pip install 'aiportrait[emulator]'`` brings. The photos' origins and licences are in
``aiportrait/emulator/data/SOURCES.md``.
"""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["SamplePhotos", "sample_photos"]


@attrs.frozen
class SamplePhotos:
    """The files :func:`sample_photos` wrote: names relative to ``folder``, by role.

    Attributes:
        folder: where the files are.
        astronaut: five training photos of Eileen Collins (one face each, 768 px).
        hopper: five training photos of Grace Hopper (one face each, 768x900 px).
        templates: three templates: Grace Hopper (768x900), the astronaut (768x768) and a
            two-face group, the astronaut on the left and Grace Hopper on the right (1200x700).
    """

    folder: Path
    astronaut: tuple[str, ...]
    hopper: tuple[str, ...]
    templates: tuple[str, ...]

    @property
    def hopper_template(self) -> str:
        """The one-face template of Grace Hopper."""
        return self.templates[0]

    @property
    def astronaut_template(self) -> str:
        """The one-face template of the astronaut."""
        return self.templates[1]

    @property
    def group_template(self) -> str:
        """The two-face template: the astronaut (left) and Grace Hopper (right)."""
        return self.templates[2]

    def path(self, name: str) -> Path:
        """The path of one of the files."""
        return self.folder / name


def _bundled(name: str) -> Image.Image:
    from PIL import Image

    # The photos ship in the emulator's data folder; read as files, without importing it.
    data = (resources.files("aiportrait") / "emulator" / "data" / name).read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        rgb: Image.Image = img.convert("RGB")
    return rgb


def sample_photos(folder: str | Path) -> SamplePhotos:
    """Write the sample training photos and templates into ``folder`` (created if missing).

    Thirteen JPEG files: ``astronaut_0.jpg`` to ``astronaut_4.jpg``, ``hopper_0.jpg`` to
    ``hopper_4.jpg``, ``template_hopper.jpg``, ``template_astronaut.jpg`` and
    ``template_group.jpg``; existing files of those names are replaced. Returns their names by
    role (see :class:`SamplePhotos`). Needs Pillow.
    """
    from PIL import Image, ImageEnhance

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)

    def save(img: Image.Image, name: str) -> str:
        img.save(out / name, quality=92)
        return name

    def variants(img: Image.Image, stem: str) -> tuple[str, ...]:
        big = img.resize((img.width * 3 // 2, img.height * 3 // 2), Image.Resampling.LANCZOS)
        w, h = big.size
        shots = [
            big,
            big.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            big.crop((w // 16, h // 16, w - w // 16, h - h // 16)).resize((w, h)),
            ImageEnhance.Brightness(big).enhance(1.2),
            big.rotate(8, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)),
        ]
        return tuple(save(s, f"{stem}_{i}.jpg") for i, s in enumerate(shots))

    astronaut, hopper = _bundled("astronaut.png"), _bundled("grace_hopper.jpg")
    group = Image.new("RGB", (1200, 700), (235, 235, 235))
    group.paste(astronaut.resize((600, 600)), (0, 50))
    group.paste(hopper.resize((600, 700)), (600, 0))
    return SamplePhotos(
        folder=out,
        astronaut=variants(astronaut, "astronaut"),
        hopper=variants(hopper, "hopper"),
        templates=(
            save(hopper.resize((768, 900), Image.Resampling.LANCZOS), "template_hopper.jpg"),
            save(astronaut.resize((768, 768), Image.Resampling.LANCZOS), "template_astronaut.jpg"),
            save(group, "template_group.jpg"),
        ),
    )
