//! QR codes of softphone onboarding payloads, as SVG or PNG. Payloads carry credentials:
//! they are never logged.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module in PNGs, and the quiet zone in modules.
const SCALE: usize = 8;
const QUIET: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "svg" => Some(Format::Svg),
            "png" => Some(Format::Png),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Svg => "image/svg+xml",
            Format::Png => "image/png",
        }
    }
}

/// The QR code of `payload` in `format`; `None` if it is too long for a QR code.
pub fn render(payload: &str, format: Format) -> Option<Vec<u8>> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M).ok()?;
    Some(match format {
        Format::Svg => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(256, 256)
            .quiet_zone(true)
            .build()
            .into_bytes(),
        Format::Png => png(&code),
    })
}

fn png(code: &QrCode) -> Vec<u8> {
    let width = code.width();
    let side = (width + 2 * QUIET) * SCALE;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; side * side];
    for y in 0..width {
        for x in 0..width {
            if colors[y * width + x] == Color::Dark {
                for dy in 0..SCALE {
                    let row = (y + QUIET) * SCALE + dy;
                    let start = row * side + (x + QUIET) * SCALE;
                    pixels[start..start + SCALE].fill(0);
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        if let Ok(mut writer) = encoder.write_header() {
            let _ = writer.write_image_data(&pixels);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_and_png() {
        let svg = String::from_utf8(render("csc:a%40b:pw@CLOUD", Format::Svg).unwrap()).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
        let png = render("csc:a%40b:pw@CLOUD", Format::Png).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(render(&"x".repeat(5000), Format::Png).is_none());
    }
}
