//! Sensirion's CRC-8: polynomial 0x31, initial value 0xFF, no reflection,
//! no final XOR.

/// The CRC-8 of `bytes` as Sensirion sensors compute it.
pub fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0xFFu8;
    for &byte in bytes {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x31
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    /// The datasheet's example: the CRC of 0xBEEF is 0x92.
    #[test]
    fn the_datasheet_example() {
        assert_eq!(super::crc8(&[0xBE, 0xEF]), 0x92);
    }
}
