package com.shop.pricing;

import com.shop.model.Item;

/** Percentage discounts. */
public final class Discount {
    private Discount() {}

    public static long apply(Item line, int percent) {
        return line.getPriceCents() * (100 - percent) / 100;
    }
}
