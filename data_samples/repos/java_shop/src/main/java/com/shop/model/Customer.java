package com.shop.model;

import java.util.ArrayList;
import java.util.List;

/** A customer and the orders they placed. */
public class Customer {
    private final String email;
    private final List<Order> orders = new ArrayList<>();

    public Customer(String email) { this.email = email; }

    public String getEmail() { return email; }

    public void place(Order order) { orders.add(order); }

    public List<Order> getOrders() { return orders; }
}
