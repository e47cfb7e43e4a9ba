"""Pixel areas: projected grids by their pixel size, geographic grids on the ellipsoid."""

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from lulc_edge.areas import AreaSum, area_reason, row_pixel_areas_m2


def test_projected_pixel_area_is_the_pixel_size():
    areas = row_pixel_areas_m2(CRS.from_epsg(32633), Affine(10, 0, 0, 0, -10, 0), 3)
    assert areas.tolist() == [100.0, 100.0, 100.0]


def test_projected_feet_are_converted_to_metres():
    # NAD83 / Massachusetts Mainland (ftUS): a 10 ft pixel is 9.29 m^2
    areas = row_pixel_areas_m2(CRS.from_epsg(2249), Affine(10, 0, 0, 0, -10, 0), 1)
    assert areas[0] == pytest.approx((10 * 1200 / 3937) ** 2, rel=1e-9)


def test_whole_earth_on_wgs84_is_its_surface_area():
    areas = row_pixel_areas_m2(CRS.from_epsg(4326), Affine(360, 0, -180, 0, -1, 90), 180)
    assert areas.sum() == pytest.approx(510_065_621.724e6, rel=1e-9)
    assert areas[90] > areas[0] * 50          # equator rows dwarf polar ones


def test_geographic_rows_shrink_with_latitude_and_hectares_sum_rows():
    crs, tr = CRS.from_epsg(4326), Affine(0.0001, 0, 10, 0, -0.0001, 60.001)
    areas = row_pixel_areas_m2(crs, tr, 10)
    assert np.all(np.diff(areas) > 0)         # northern hemisphere: rows grow southwards
    acc = AreaSum(crs, tr)
    acc.add(np.ones((10, 3), np.uint8), 0)
    ha = acc.hectares()
    assert ha[0] == 0 and ha[1] == pytest.approx(3 * areas.sum() / 10_000)


def test_no_crs_has_no_area_and_a_reason():
    assert row_pixel_areas_m2(None, Affine.identity(), 4) is None
    assert area_reason(None, Affine.identity()) == "the map has no CRS"
