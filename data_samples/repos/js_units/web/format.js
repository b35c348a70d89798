function formatNumber(value) {
  return value.toLocaleString('en-GB', { maximumFractionDigits: 2 });
}

module.exports = { formatNumber };
