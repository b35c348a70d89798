export function drawChart(canvas) {
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#1f6feb';
  [3, 5, 2, 8].forEach((h, i) => ctx.fillRect(i * 20, 100 - h * 10, 15, h * 10));
}
