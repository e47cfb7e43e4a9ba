"""lulc_edge.styles: how a class map explains itself: palette, class tags, PAM and QGIS style."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from .clouds import CLOUD_CLASS
from .contract import ClassInfo, Contract
from .files import write_atomic


def map_classes(contract: Contract, clouds: bool = False) -> tuple[ClassInfo, ...]:
    """The values a class map holds besides nodata: the model's classes, then Cloud (254,
    white) when the run masks clouds."""
    return (*contract.classes, *((CLOUD_CLASS,) if clouds else ()))


def colormap(contract: Contract, clouds: bool = False) -> dict[int, tuple[int, int, int, int]]:
    """Class colours (Cloud's too when masking) plus nodata (black, transparent) as a GDAL
    colour table."""
    cmap = {c.value: (*c.rgb, 255) for c in map_classes(contract, clouds)}
    cmap[contract.nodata.value] = (*contract.nodata.rgb, 0)
    return cmap


def class_tags(contract: Contract, clouds: bool = False) -> dict[str, str]:
    """Tags naming the classes, so the file explains itself without the model."""
    tags = {f"CLASS_{c.value}": c.name for c in map_classes(contract, clouds)}
    tags[f"CLASS_{contract.nodata.value}"] = contract.nodata.name
    return tags


def pam_xml(contract: Contract, clouds: bool = False) -> str:
    """GDAL PAM (.aux.xml) text naming the classes of band 1: category names, a thematic
    raster attribute table (value, name, colour) that GDAL and QGIS read back, and a colour
    table of the classes alone. A GeoTIFF palette has 256 entries (TIFF stores 2^bits), which
    QGIS lists as a 256-row legend; GDAL prefers this sidecar's table, so QGIS lists the
    classes, named by the category names (nodata is drawn transparent either way); Cloud
    among them when ``clouds``."""
    classes = map_classes(contract, clouds)
    last = max(c.value for c in classes)
    rgba = {c.value: (*c.rgb, 255) for c in classes}
    table = "".join('<Entry c1="{}" c2="{}" c3="{}" c4="{}"/>'.format(*rgba.get(v, (0, 0, 0, 0)))
                    for v in range(last + 1))
    names = {c.value: c.name for c in (*classes, contract.nodata)}
    cats = "".join(f"<Category>{escape(names.get(v, ''))}</Category>" if v in names
                   else "<Category />" for v in range(max(names) + 1))
    fields = [("Value", 0, 5), ("Class_Name", 2, 2), ("Red", 0, 6), ("Green", 0, 7),
              ("Blue", 0, 8)]
    defs = "".join(f'<FieldDefn index="{i}"><Name>{n}</Name><Type>{t}</Type>'
                   f"<Usage>{u}</Usage></FieldDefn>" for i, (n, t, u) in enumerate(fields))
    rows = "".join(
        f'<Row index="{i}"><F>{c.value}</F><F>{escape(c.name)}</F>'
        + "".join(f"<F>{v}</F>" for v in c.rgb) + "</Row>"
        for i, c in enumerate((*classes, contract.nodata)))
    return ('<PAMDataset>\n  <PAMRasterBand band="1">\n'
            "    <ColorInterp>Palette</ColorInterp>\n"
            f"    <CategoryNames>{cats}</CategoryNames>\n"
            f"    <ColorTable>{table}</ColorTable>\n"
            f'    <GDALRasterAttributeTable tableType="thematic">{defs}{rows}'
            "</GDALRasterAttributeTable>\n  </PAMRasterBand>\n</PAMDataset>\n")


def write_pam(final: Path, contract: Contract, clouds: bool = False) -> None:
    """Write ``final.aux.xml``: GeoTIFF has no tag for category names, GDAL keeps them in this
    sidecar (as GDAL's own SetCategoryNames would)."""
    write_atomic(final.with_name(final.name + ".aux.xml"), pam_xml(contract, clouds))


def qml_style(classes: Sequence[ClassInfo], nodata: ClassInfo | None = None) -> str:
    """A QGIS layer style (paletted renderer with the class names and colours; ``nodata``, when
    given, is listed last, so the legend names it, though QGIS draws nodata transparent)."""
    rows = [(c, 255) for c in classes] + ([(nodata, 0)] if nodata is not None else [])
    entries = "".join(
        f'<paletteEntry value="{c.value}" color="{c.color}" alpha="{a}" '
        f'label="{escape(c.name, {chr(34): "&quot;"})}"/>' for c, a in rows)
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22.0" styleCategories="Symbology">\n  <pipe>\n'
            '    <rasterrenderer type="paletted" band="1" opacity="1" nodataColor="">\n'
            f"      <colorPalette>{entries}</colorPalette>\n"
            "    </rasterrenderer>\n  </pipe>\n</qgis>\n")


def qml_path(final: Path) -> Path:
    """Where a map's QGIS style goes: NAME.qml beside NAME.tif, which QGIS loads with it."""
    return final.with_suffix(".qml")


def write_qml(final: Path, classes: Sequence[ClassInfo], nodata: ClassInfo | None) -> Path:
    """Write the QGIS style of the map ``final`` (see ``qml_style``); its path."""
    path = qml_path(final)
    write_atomic(path, qml_style(classes, nodata))
    return path


