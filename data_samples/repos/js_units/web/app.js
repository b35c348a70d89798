// Browser demo: shows a conversion, loads the chart code only when asked.
const { formatNumber } = require('./format');

document.querySelector('#out').textContent = formatNumber(1234.5);

document.querySelector('#chart').addEventListener('click', async () => {
  const { drawChart } = await import('./chart.mjs');
  drawChart(document.querySelector('canvas'));
});
